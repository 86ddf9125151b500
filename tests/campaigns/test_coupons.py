"""Coupons over HTTP: templates, issue by scans (coupon campaigns and coupon prizes), the till's redeem."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from campaigns import coupons
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.campaigns.test_campaign_api import fields
from tests.campaigns.test_scan_rewards import NOW, draw_campaign, launch, outcome, scan
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=40)


def amount_template(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "5 yuan off",
        "discount_kind": "amount",
        "amount_off_cents": 500,
        "min_spend_cents": 2_000,
        "valid_days": 30,
    }
    return {**body, **extra}


async def make_template(client: AsyncTestClient[Any], tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/coupon-templates", json=body, headers=tenant.headers(Role.MARKETER))
    assert response.status_code == 201, response.text
    template: dict[str, Any] = response.json()
    return template


def coupon_campaign(template_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Scan for a coupon",
        "kind": "coupon",
        "starts_at": (NOW - dt.timedelta(days=1)).isoformat(),
        "ends_at": (NOW + dt.timedelta(days=30)).isoformat(),
        "budget_cents": 100_000,
        "coupon_template_id": template_id,
    }
    return {**body, **extra}


async def coupon_from_scan(client: AsyncTestClient[Any], url: str) -> str:
    answer = await scan(client, url)
    [outcome] = answer["reward"]["outcomes"]
    assert outcome["result"] == "awarded", outcome
    code: str = outcome["coupon"]["code"]
    return code


async def redeem(
    client: AsyncTestClient[Any], tenant: Tenant, code: str, order_ref: str, spend_cents: int = 5_000
) -> Any:
    return await client.post(
        f"/v1/coupons/{code}/redeem",
        json={"order_ref": order_ref, "spend_cents": spend_cents, "store": "Hangzhou West Lake"},
        headers=tenant.headers(Role.POINT_OF_SALE),
    )


def problem_type(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    slug: str = response.json()["type"].rsplit("/", 1)[-1]
    return slug


class TestTemplates:
    async def test_a_template_is_saved_listed_and_kept_within_its_brand(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """The cost defaults to the amount off; another brand cannot read it."""
        template = await make_template(client, tenant_a, amount_template())
        assert template["cost_cents"] == 500
        assert template["usage_limit"] == 1
        listed = await client.get("/v1/coupon-templates", headers=tenant_a.headers(Role.MARKETER))
        assert [t["id"] for t in listed.json()["items"]] == [template["id"]]
        foreign = await client.get(
            f"/v1/coupon-templates/{template['id']}", headers=tenant_b.headers(Role.MARKETER)
        )
        assert foreign.status_code == 404

    async def test_impossible_terms_are_named_field_by_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """No amount for an amount coupon, no validity, and a percent without a cost: all reported."""
        body = {"name": "Broken", "discount_kind": "amount"}
        response = await client.post(
            "/v1/coupon-templates", json=body, headers=tenant_a.headers(Role.MARKETER)
        )
        assert response.status_code == 422
        assert fields(response.json()) == {"amount_off_cents", "valid_until"}
        body = {"name": "Broken", "discount_kind": "percent", "percent_off": 120, "valid_days": 3}
        response = await client.post(
            "/v1/coupon-templates", json=body, headers=tenant_a.headers(Role.MARKETER)
        )
        assert response.status_code == 422
        body = {"name": "Broken", "discount_kind": "percent", "percent_off": 20, "valid_days": 3}
        response = await client.post(
            "/v1/coupon-templates", json=body, headers=tenant_a.headers(Role.MARKETER)
        )
        assert fields(response.json()) == {"cost_cents"}

    async def test_a_till_token_can_do_nothing_but_coupons(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        for path in ("/v1/campaigns", "/v1/coupon-templates", "/v1/products"):
            response = await client.get(path, headers=tenant_a.headers(Role.POINT_OF_SALE))
            assert response.status_code == 403, path


class TestIssue:
    async def test_a_coupon_campaign_gives_the_first_scan_a_coupon_in_the_wallet(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """The answer shows the code, the wallet the same code with its terms; the budget pays its cost."""
        template = await make_template(client, tenant_a, amount_template())
        campaign_id = await launch(client, tenant_a, coupon_campaign(template["id"]))
        answer = await scan(client, issued.urls[0])
        [outcome] = answer["reward"]["outcomes"]
        assert outcome["kind"] == "coupon"
        code = outcome["coupon"]["code"]
        assert coupons.normalize(code) is not None
        assert outcome["coupon"]["name"] == "5 yuan off"
        client.cookies.clear()
        wallet = await client.get(
            "/v1/members/me/rewards", headers={"Cookie": f"oc_member={answer['member_token']}"}
        )
        assert wallet.status_code == 200, wallet.text
        [held] = wallet.json()["coupons"]
        assert held["code"] == code
        assert held["status"] == "usable"
        assert held["uses_left"] == 1
        assert held["min_spend_cents"] == 2_000
        # The member's data export (PIPL) holds the coupon too.
        exported = await client.get(
            "/v1/members/me/export", headers={"Cookie": f"oc_member={answer['member_token']}"}
        )
        assert [c["code"] for c in exported.json()["coupons"]] == [code]
        valid_for = dt.datetime.fromisoformat(held["valid_until"]) - dt.datetime.fromisoformat(
            held["valid_from"]
        )
        assert valid_for == dt.timedelta(days=30)
        repeat = await scan(client, issued.urls[0])
        assert repeat["reward"] is None or all(o["coupon"] is None for o in repeat["reward"]["outcomes"])
        cur = await db.execute(
            "SELECT spent_cents, (SELECT count(*) FROM coupons) FROM campaigns WHERE id = %s", (campaign_id,)
        )
        assert await cur.fetchone() == (500, 1)
        # The code is stored hashed and sealed, never in clear.
        cur = await db.execute("SELECT code_hash, code_sealed FROM coupons")
        row = await cur.fetchone()
        assert row is not None
        assert code.replace("-", "").encode() not in bytes(row[0]) + bytes(row[1])

    async def test_the_budget_stops_coupons_at_its_exact_amount(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """A budget for 4 coupons, 20 concurrent first scans: 4 coupons, spend equals the budget."""
        template = await make_template(client, tenant_a, amount_template())
        campaign_id = await launch(client, tenant_a, coupon_campaign(template["id"], budget_cents=2_000))
        answers = await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(20)))
        results = [outcome(a) for a in answers]
        assert results.count("awarded") == 4
        assert results.count("over_budget") + results.count(None) == 16
        cur = await db.execute(
            "SELECT spent_cents, (SELECT count(*) FROM coupons WHERE campaign_id = c.id) FROM campaigns c"
            " WHERE id = %s",
            (campaign_id,),
        )
        assert await cur.fetchone() == (2_000, 4)
        stats = await client.get(
            f"/v1/campaigns/{campaign_id}/stats", headers=tenant_a.headers(Role.MARKETER)
        )
        totals = stats.json()["totals"]
        assert (totals["rewarded_scans"], totals["coupons_issued"], totals["coupons_used"]) == (4, 4, 0)
        assert sum(day["spent_cents"] for day in stats.json()["by_day"]) == 2_000

    async def test_a_coupon_prize_of_a_lucky_draw_issues_the_winner_a_coupon(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        template = await make_template(client, tenant_a, amount_template())
        prize = {
            "name": "Coupon",
            "kind": "coupon",
            "weight": 1,
            "stock": 2,
            "cost_cents": 500,
            "coupon_template_id": template["id"],
        }
        await launch(client, tenant_a, draw_campaign(prizes=[prize]))
        answers = [await scan(client, url) for url in issued.urls[:3]]
        results = [a["reward"]["outcomes"][0] for a in answers]
        assert [r["result"] for r in results] == ["won", "won", "sold_out"]
        assert results[0]["coupon"]["code"] != results[1]["coupon"]["code"]
        assert results[2]["coupon"] is None

    async def test_a_campaign_names_only_its_own_brands_template(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        foreign = await make_template(client, tenant_b, amount_template())
        body = coupon_campaign(foreign["id"])
        response = await client.post("/v1/campaigns", json=body, headers=tenant_a.headers(Role.MARKETER))
        assert response.status_code == 422
        assert fields(response.json()) == {"coupon_template_id"}
        prize = {"name": "Coupon", "kind": "coupon", "weight": 1, "stock": 2, "cost_cents": 500}
        response = await client.post(
            "/v1/campaigns", json=draw_campaign(prizes=[prize]), headers=tenant_a.headers(Role.MARKETER)
        )
        assert fields(response.json()) == {"prizes[0].coupon_template_id"}


class TestRedeem:
    async def test_the_till_checks_then_redeems_once_and_a_retry_replays(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        template = await make_template(client, tenant_a, amount_template())
        await launch(client, tenant_a, coupon_campaign(template["id"]))
        code = await coupon_from_scan(client, issued.urls[0])
        checked = await client.get(
            f"/v1/coupons/{code.lower()}",
            params={"spend_cents": 3_000},
            headers=tenant_a.headers(Role.POINT_OF_SALE),
        )
        assert checked.status_code == 200, checked.text
        assert checked.json()["status"] == "usable"
        assert (checked.json()["discount_cents"], checked.json()["min_spend_met"]) == (500, True)
        till = tenant_a.headers(Role.POINT_OF_SALE)
        short = (await client.get(f"/v1/coupons/{code}", params={"spend_cents": 100}, headers=till)).json()
        assert (short["min_spend_met"], short["discount_cents"], short["min_spend_cents"]) == (
            False,
            None,
            2_000,
        )
        negative = await client.get(f"/v1/coupons/{code}", params={"spend_cents": -5}, headers=till)
        assert assert_problem(negative, 422, "validation-error")["errors"][0]["field"] == "spend_cents"
        first = await redeem(client, tenant_a, code, "order-1")
        assert first.status_code == 200, first.text
        assert first.json()["discount_cents"] == 500
        assert first.json()["uses_left"] == 0
        assert first.json()["replayed"] is False
        again = await redeem(client, tenant_a, code.replace("-", ""), "order-1")
        assert again.status_code == 200
        assert again.json()["replayed"] is True
        assert again.json()["redeemed_at"] == first.json()["redeemed_at"]
        other_amount = await redeem(client, tenant_a, code, "order-1", spend_cents=9_000)
        assert (other_amount.status_code, problem_type(other_amount)) == (409, "order-already-redeemed")
        used = await redeem(client, tenant_a, code, "order-2")
        assert (used.status_code, problem_type(used)) == (409, "coupon-used")

    async def test_every_refusal_has_its_own_clear_error(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        template = await make_template(client, tenant_a, amount_template())
        await launch(client, tenant_a, coupon_campaign(template["id"], member_campaign_cap=10))
        code = await coupon_from_scan(client, issued.urls[0])
        low = await redeem(client, tenant_a, code, "order-1", spend_cents=1_999)
        assert (low.status_code, problem_type(low)) == (422, "coupon-min-spend")
        foreign = await redeem(client, tenant_b, code, "order-1")
        assert (foreign.status_code, problem_type(foreign)) == (403, "coupon-foreign")
        unknown = await redeem(client, tenant_a, coupons.display(coupons.new_code()), "order-1")
        assert (unknown.status_code, problem_type(unknown)) == (404, "coupon-not-found")
        garbage = await redeem(client, tenant_a, "not-a-code!", "order-1")
        assert (garbage.status_code, problem_type(garbage)) == (404, "coupon-not-found")
        await db.execute("UPDATE coupons SET valid_until = now() - interval '1 second'")
        expired = await redeem(client, tenant_a, code, "order-1")
        assert (expired.status_code, problem_type(expired)) == (409, "coupon-expired")
        await db.execute(
            "UPDATE coupons SET valid_from = now() + interval '1 day', valid_until = now() + interval '2 day'"
        )
        early = await redeem(client, tenant_a, code, "order-1")
        assert (early.status_code, problem_type(early)) == (409, "coupon-not-yet-valid")
        no_body = await client.post(
            f"/v1/coupons/{code}/redeem",
            json={"spend_cents": -1},
            headers=tenant_a.headers(Role.POINT_OF_SALE),
        )
        assert no_body.status_code == 422

    async def test_concurrent_redemptions_never_exceed_the_usage_limit(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """Usage limit 3, 20 tills at once with different orders: exactly 3 succeed."""
        template = await make_template(client, tenant_a, amount_template(usage_limit=3))
        await launch(client, tenant_a, coupon_campaign(template["id"]))
        code = await coupon_from_scan(client, issued.urls[0])
        answers = await asyncio.gather(*(redeem(client, tenant_a, code, f"order-{n}") for n in range(20)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * 3 + [409] * 17
        assert {problem_type(a) for a in answers if a.status_code == 409} == {"coupon-used"}

    async def test_a_percent_coupon_takes_its_share_up_to_its_cap(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        body = {
            "name": "20% off, at most 30 yuan",
            "discount_kind": "percent",
            "percent_off": 20,
            "max_discount_cents": 3_000,
            "valid_days": 7,
            "usage_limit": 2,
            "cost_cents": 1_000,
        }
        template = await make_template(client, tenant_a, body)
        await launch(client, tenant_a, coupon_campaign(template["id"]))
        code = await coupon_from_scan(client, issued.urls[0])
        small = await redeem(client, tenant_a, code, "order-1", spend_cents=5_005)
        assert small.json()["discount_cents"] == 1_001
        large = await redeem(client, tenant_a, code, "order-2", spend_cents=100_000)
        assert large.json()["discount_cents"] == 3_000


class TestPointsAdjustments:
    async def test_customer_service_adjusts_with_a_reason_and_it_is_audited(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant, issued: IssuedBatch
    ) -> None:
        member_id = (await scan(client, issued.urls[0]))["member"]["id"]
        path = f"/v1/members/{member_id}/points/adjustments"
        added = await client.post(
            path, json={"amount": 300, "reason": "goodwill"}, headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
        )
        assert added.status_code == 201, added.text
        assert added.json()["status"] == "applied" and added.json()["adjustment"]["balance"] == 300
        taken = await client.post(
            path, json={"amount": -100, "reason": "duplicate credit"}, headers=tenant_a.headers(Role.FINANCE)
        )
        assert taken.json()["adjustment"]["balance"] == 200
        too_much = await client.post(
            path, json={"amount": -1_000, "reason": "oops"}, headers=tenant_a.headers(Role.FINANCE)
        )
        assert (too_much.status_code, problem_type(too_much)) == (409, "insufficient-points")
        marketer = await client.post(
            path, json={"amount": 5, "reason": "nope"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert marketer.status_code == 403
        foreign = await client.post(
            path, json={"amount": 5, "reason": "cross-brand"}, headers=tenant_b.headers(Role.CUSTOMER_SERVICE)
        )
        assert foreign.status_code == 404
        no_reason = await client.post(
            path, json={"amount": 5}, headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
        )
        assert no_reason.status_code == 422
        audit = await client.get(
            "/v1/audit", params={"action": "points.adjust"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert [e["after"]["amount"] for e in audit.json()["items"]] == [300, -100]


@given(st.text(alphabet=coupons.CODE_ALPHABET, min_size=16, max_size=16))
def test_a_code_survives_display_case_and_separators(code: str) -> None:
    shown = coupons.display(code)
    assert coupons.normalize(shown) == code
    assert coupons.normalize(shown.lower().replace("-", " ")) == code
    assert coupons.normalize(shown + "X") is None


def test_codes_are_unguessable_and_distinct() -> None:
    made = {coupons.new_code() for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(len(c) == coupons.CODE_LENGTH for c in made)
