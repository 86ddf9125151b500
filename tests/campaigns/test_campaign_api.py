"""The marketers' campaign API: rules checked on save, the lifecycle, live edits, tenancy and roles."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


LADDER = {"tiers": [{"name": "basic"}, {"name": "gold", "min_points_earned": 500}]}


async def put_tiers(client: AsyncTestClient[Any], tenant: Tenant) -> None:
    """The tiers the bodies below name ("gold"): a campaign may only name its brand's own tiers."""
    saved = await client.put("/v1/member-tiers", json=LADDER, headers=tenant.headers(Role.MARKETER))
    assert saved.status_code == 200, saved.text


@pytest.fixture(autouse=True)
async def tier_ladder(client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
    await put_tiers(client, tenant_a)


def points_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Spring points",
        "kind": "points",
        "starts_at": (NOW - dt.timedelta(days=1)).isoformat(),
        "ends_at": (NOW + dt.timedelta(days=30)).isoformat(),
        "time_zone": "Asia/Shanghai",
        "budget_cents": 1_000_000,
        "daily_budget_cents": 50_000,
        "member_daily_cap": 1,
        "member_campaign_cap": 5,
        "priority": 10,
        "stackable": True,
        "eligibility": {
            "regions": ["CN-SH"],
            "first_scan_only": True,
            "member_tiers": ["gold"],
            "members": "new",
            "time_windows": [{"start": "08:00:00", "end": "12:00:00"}],
        },
        "points_reward": {"points": 10, "tier_multipliers_pct": {"gold": 150}},
        **extra,
    }


def draw_body(**extra: Any) -> dict[str, Any]:
    body = points_body(**{"kind": "lucky_draw", "name": "Lucky spring", "no_prize_weight": 90, **extra})
    del body["points_reward"]
    body["prizes"] = [
        {"name": "Bike", "kind": "physical", "weight": 1, "stock": 2, "cost_cents": 30_000},
        {"name": "Points", "kind": "points", "weight": 9, "stock": 100, "cost_cents": 10, "points": 50},
    ]
    return body


async def create(client: AsyncTestClient[Any], tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/campaigns", json=body, headers=tenant.headers(Role.MARKETER))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def step(client: AsyncTestClient[Any], tenant: Tenant, campaign_id: str, action: str) -> Any:
    return await client.post(f"/v1/campaigns/{campaign_id}:{action}", headers=tenant.headers(Role.MARKETER))


def fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem["errors"]}


class TestCreate:
    async def test_a_points_campaign_is_saved_as_a_draft_with_its_rules(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A valid body becomes a draft; the rules and reward come back as sent."""
        campaign = await create(client, tenant_a, points_body())
        assert campaign["status"] == "draft"
        assert campaign["kind"] == "points"
        assert campaign["brand_id"] == str(tenant_a.brand_id)
        assert campaign["eligibility"]["time_windows"] == [{"start": "08:00:00", "end": "12:00:00"}]
        assert campaign["eligibility"]["member_tiers"] == ["gold"]
        assert campaign["points_reward"]["tier_multipliers_pct"] == {"gold": 150}
        assert campaign["seed_hash"] is None
        assert campaign["prizes"] == []
        response = await client.get(f"/v1/campaigns/{campaign['id']}", headers=tenant_a.headers(Role.AUDITOR))
        assert response.json() == campaign

    async def test_a_new_ladder_keeps_the_tiers_campaigns_name(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Renaming "gold" away would leave the campaign's tier rule and multiplier naming no tier: they
        would silently never apply. The ladder waits until no campaign still to run names it."""
        campaign = await create(client, tenant_a, points_body())
        renamed = {"tiers": [{"name": "basic"}, {"name": "Gold", "min_points_earned": 500}]}
        marketer = tenant_a.headers(Role.MARKETER)
        refused = await client.put("/v1/member-tiers", json=renamed, headers=marketer)
        problem = assert_problem(refused, 409, "tier-in-use")
        assert "Spring points: gold" in problem["detail"] and fields(problem) == {"tiers"}
        ladder = (await client.get("/v1/member-tiers", headers=marketer)).json()
        assert [t["name"] for t in ladder["tiers"]] == ["basic", "gold"]
        for action in ("activate", "end"):
            assert (await step(client, tenant_a, campaign["id"], action)).status_code == 200
        assert (await client.put("/v1/member-tiers", json=renamed, headers=marketer)).status_code == 200

    async def test_a_lucky_draw_is_saved_with_its_prizes_and_no_seed_yet(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A draw's prize pool is saved with it; the seed is committed only when it leaves the draft state."""
        campaign = await create(client, tenant_a, draw_body())
        assert {p["name"] for p in campaign["prizes"]} == {"Bike", "Points"}
        assert campaign["seed_hash"] is None

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"ends_at": (NOW - dt.timedelta(days=2)).isoformat()}, "ends_at"),
            ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
            ({"budget_cents": -1}, "budget_cents"),
            ({"daily_budget_cents": 2_000_000}, "daily_budget_cents"),
            ({"member_daily_cap": 0}, "member_daily_cap"),
            ({"member_daily_cap": 9}, "member_daily_cap"),
            (
                {"eligibility": {"time_windows": [{"start": "12:00:00", "end": "08:00:00"}]}},
                "eligibility.time_windows[0]",
            ),
            ({"points_reward": None}, "points_reward"),
            ({"points_reward": {}}, "points_reward"),
            ({"starts_at": "2030-01-01T00:00:00"}, "starts_at"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    async def test_bad_settings_are_422_naming_the_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, change: dict[str, Any], field: str
    ) -> None:
        """Impossible schedules, unknown zones, negative or inconsistent money and caps: field errors."""
        response = await client.post("/v1/campaigns", json=points_body(**change), headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert field in fields(problem), problem

    async def test_every_broken_rule_is_reported_at_once(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Several faults come back together, each with its field."""
        body = points_body(time_zone="Nowhere/Null", daily_budget_cents=2_000_000)
        body["ends_at"] = body["starts_at"]
        problem = assert_problem(
            await client.post("/v1/campaigns", json=body, headers=tenant_a.headers()), 422, "validation-error"
        )
        assert fields(problem) == {"ends_at", "time_zone", "daily_budget_cents"}

    async def test_draw_weights_must_not_sum_to_zero(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A draw nobody can win nor lose is refused."""
        body = draw_body(no_prize_weight=0)
        for prize in body["prizes"]:
            prize["weight"] = 0
        problem = assert_problem(
            await client.post("/v1/campaigns", json=body, headers=tenant_a.headers()), 422, "validation-error"
        )
        assert fields(problem) == {"prizes"}

    async def test_rules_cannot_name_another_brands_products(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """A product id of brand B in A's rules is an unknown product."""
        response = await client.post("/v1/products", json={"name": "B's"}, headers=tenant_b.headers())
        product_id = response.json()["id"]
        body = points_body(eligibility={"product_ids": [product_id]})
        problem = assert_problem(
            await client.post("/v1/campaigns", json=body, headers=tenant_a.headers()), 422, "validation-error"
        )
        assert fields(problem) == {"eligibility.product_ids"}
        own = (await client.post("/v1/products", json={"name": "A's"}, headers=tenant_a.headers())).json()[
            "id"
        ]
        await create(client, tenant_a, points_body(points_reward={"per_product": {own: 20}}))
        foreign_amount = points_body(points_reward={"per_product": {product_id: 20}})
        problem = assert_problem(
            await client.post("/v1/campaigns", json=foreign_amount, headers=tenant_a.headers()),
            422,
            "validation-error",
        )
        assert fields(problem) == {"points_reward.per_product"}

    @pytest.mark.parametrize(
        ("prize", "field"),
        [
            # Stock and budget would go, the winner would get nothing.
            ({"name": "P", "kind": "points", "weight": 1, "stock": 9, "cost_cents": 100}, "prizes[1].points"),
            (
                {"name": "P", "kind": "physical", "weight": 1, "stock": 9, "cost_cents": 100, "points": 5},
                "prizes[1].points",
            ),
            (
                {
                    "name": "P",
                    "kind": "coupon",
                    "weight": 1,
                    "stock": 9,
                    "cost_cents": 100,
                    "coupon_template_id": "00000000-0000-4000-8000-000000000000",
                },
                "prizes[1].coupon_template_id",
            ),
        ],
    )
    async def test_a_prize_is_checked_against_its_kind(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, prize: dict[str, Any], field: str
    ) -> None:
        body = draw_body()
        body["prizes"].insert(1, prize)
        problem = assert_problem(
            await client.post("/v1/campaigns", json=body, headers=tenant_a.headers()), 422, "validation-error"
        )
        assert fields(problem) == {field}

    async def test_points_must_cost_the_budget_something(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Free points would escape the budget's limits."""
        body = points_body(points_reward={"points": 10, "cents_per_point": 0})
        problem = assert_problem(
            await client.post("/v1/campaigns", json=body, headers=tenant_a.headers()), 422, "validation-error"
        )
        assert fields(problem) == {"points_reward.cents_per_point"}

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"eligibility": {"member_tiers": ["Gold"]}}, "eligibility.member_tiers"),
            (
                {"points_reward": {"points": 10, "tier_multipliers_pct": {"platinum": 200}}},
                "points_reward.tier_multipliers_pct",
            ),
        ],
    )
    async def test_tiers_are_the_brands_own(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, change: dict[str, Any], field: str
    ) -> None:
        """A misspelt tier would never apply: refused on save, with the names the brand has."""
        response = await client.post("/v1/campaigns", json=points_body(**change), headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert fields(problem) == {field}


class TestLifecycle:
    async def test_schedule_activate_pause_resume_end(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """The happy path walks draft -> scheduled -> active -> paused -> active -> ended."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        for action, status in [
            ("schedule", "scheduled"),
            ("activate", "active"),
            ("pause", "paused"),
            ("resume", "active"),
            ("end", "ended"),
        ]:
            response = await step(client, tenant_a, campaign_id, action)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == status

    @pytest.mark.parametrize(
        ("path", "action"),
        [
            ([], "pause"),
            ([], "resume"),
            ([], "end"),
            (["activate"], "schedule"),
            (["activate", "end"], "resume"),
        ],
    )
    async def test_invalid_transitions_are_409(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, path: list[str], action: str
    ) -> None:
        """A step the lifecycle does not allow from the current status is a conflict with a stable type."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        for earlier in path:
            assert (await step(client, tenant_a, campaign_id, earlier)).status_code == 200
        assert_problem(await step(client, tenant_a, campaign_id, action), 409, "invalid-transition")

    async def test_an_unknown_action_is_404(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """Only the five lifecycle steps exist."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        assert_problem(await step(client, tenant_a, campaign_id, "explode"), 404, "not-found")
        assert_problem(await step(client, tenant_a, "not-a-uuid", "pause"), 404, "not-found")

    async def test_a_campaign_already_over_cannot_be_scheduled(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Scheduling a campaign whose end is past is refused on ends_at."""
        body = points_body(
            starts_at=(NOW - dt.timedelta(days=10)).isoformat(),
            ends_at=(NOW - dt.timedelta(days=1)).isoformat(),
        )
        campaign_id = (await create(client, tenant_a, body))["id"]
        problem = assert_problem(
            await step(client, tenant_a, campaign_id, "schedule"), 422, "validation-error"
        )
        assert fields(problem) == {"ends_at"}

    async def test_a_draw_commits_to_its_seed_when_scheduled_and_reveals_it_at_the_end(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """The hash is published when scheduled, kept when activated, and matches the seed revealed."""
        campaign_id = (await create(client, tenant_a, draw_body()))["id"]
        scheduled = (await step(client, tenant_a, campaign_id, "schedule")).json()
        assert scheduled["seed_hash"] and scheduled["seed_revealed"] is None
        active = (await step(client, tenant_a, campaign_id, "activate")).json()
        assert active["seed_hash"] == scheduled["seed_hash"]
        ended = (await step(client, tenant_a, campaign_id, "end")).json()
        assert ended["status"] == "ended"
        assert hashlib.sha256(bytes.fromhex(ended["seed_revealed"])).hexdigest() == scheduled["seed_hash"]

    async def test_prize_stock_can_be_topped_up_until_the_end(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Top-up adds stock and is audited; after the end it is a conflict."""
        campaign = await create(client, tenant_a, draw_body())
        bike = next(p for p in campaign["prizes"] if p["name"] == "Bike")
        url = f"/v1/campaigns/{campaign['id']}/prizes/{bike['id']}:top-up"
        response = await client.post(url, json={"add": 3}, headers=tenant_a.headers(Role.MARKETER))
        assert response.status_code == 200, response.text
        assert response.json()["stock"] == bike["stock"] + 3
        assert_problem(
            await client.post(url, json={"add": -1}, headers=tenant_a.headers()), 422, "validation-error"
        )
        await step(client, tenant_a, campaign["id"], "activate")
        await step(client, tenant_a, campaign["id"], "end")
        assert_problem(
            await client.post(url, json={"add": 1}, headers=tenant_a.headers()), 409, "campaign-locked"
        )


class TestEdits:
    async def test_a_draft_is_freely_editable_and_rechecked(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A draft takes any change without the flag; the merged settings obey the same rules."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        url = f"/v1/campaigns/{campaign_id}"
        response = await client.patch(
            url, json={"name": "Renamed", "daily_budget_cents": None}, headers=tenant_a.headers()
        )
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Renamed"
        assert response.json()["daily_budget_cents"] is None
        problem = assert_problem(
            await client.patch(
                url, json={"budget_cents": 10, "daily_budget_cents": 20}, headers=tenant_a.headers()
            ),
            422,
            "validation-error",
        )
        assert fields(problem) == {"daily_budget_cents"}

    async def test_a_live_change_needs_the_flag_and_is_audited(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Without `live_change` a live campaign's rules are refused (409); with it they change, audited."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        await step(client, tenant_a, campaign_id, "activate")
        url = f"/v1/campaigns/{campaign_id}"
        refused = await client.patch(
            url, json={"budget_cents": 2_000_000}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert_problem(refused, 409, "live-change-not-confirmed")
        unchanged = (await client.get(url, headers=tenant_a.headers())).json()
        assert unchanged["budget_cents"] == 1_000_000
        response = await client.patch(
            url,
            json={"budget_cents": 2_000_000, "live_change": True},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert response.status_code == 200, response.text
        assert response.json()["budget_cents"] == 2_000_000
        entries = (
            await client.get(
                "/v1/audit", params={"action": "campaign.live_change"}, headers=tenant_a.headers(Role.AUDITOR)
            )
        ).json()["items"]
        assert len(entries) == 1
        assert entries[0]["object_id"] == campaign_id
        assert entries[0]["actor"].startswith("token:")
        assert entries[0]["before"]["budget_cents"] == 1_000_000
        assert entries[0]["after"]["budget_cents"] == 2_000_000

    async def test_an_ended_campaign_cannot_change(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Not even with the flag."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        await step(client, tenant_a, campaign_id, "activate")
        await step(client, tenant_a, campaign_id, "end")
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}",
            json={"name": "x", "live_change": True},
            headers=tenant_a.headers(),
        )
        assert_problem(response, 409, "campaign-locked")

    async def test_a_live_draws_weights_are_fixed(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Once the seed is committed the 'no prize' weight stays, or past draws would stop verifying."""
        campaign_id = (await create(client, tenant_a, draw_body()))["id"]
        await step(client, tenant_a, campaign_id, "activate")
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}",
            json={"no_prize_weight": 1, "live_change": True},
            headers=tenant_a.headers(),
        )
        problem = assert_problem(response, 409, "campaign-locked")
        assert fields(problem) == {"no_prize_weight"}
        prizes = [{"name": "Car", "kind": "physical", "weight": 1, "stock": 1, "cost_cents": 1}]
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}",
            json={"prizes": prizes, "live_change": True},
            headers=tenant_a.headers(),
        )
        assert fields(assert_problem(response, 409, "campaign-locked")) == {"prizes"}

    async def test_a_drafts_prize_pool_is_replaced_whole(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """The console's editor sends the whole pool: the draft keeps exactly the prizes sent."""
        campaign_id = (await create(client, tenant_a, draw_body()))["id"]
        pool = [
            {"name": "Mug", "kind": "physical", "weight": 3, "stock": 30, "cost_cents": 500},
            {"name": "Cap", "kind": "physical", "weight": 1, "stock": 10, "cost_cents": 900},
        ]
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}", json={"prizes": pool}, headers=tenant_a.headers()
        )
        assert response.status_code == 200, response.text
        assert sorted((p["name"], p["stock"]) for p in response.json()["prizes"]) == [
            ("Cap", 10),
            ("Mug", 30),
        ]
        too_rich = [{**pool[0], "kind": "points", "points": 3_000_000_000}]
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}", json={"prizes": too_rich}, headers=tenant_a.headers()
        )
        assert fields(assert_problem(response, 422, "validation-error")) == {"prizes[0].points"}
        emptied = await client.patch(
            f"/v1/campaigns/{campaign_id}", json={"prizes": []}, headers=tenant_a.headers()
        )
        assert fields(assert_problem(emptied, 422, "validation-error")) >= {"prizes"}


class TestAccess:
    async def test_another_brands_campaign_is_404(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """Reads, edits and steps on B's campaign by A all answer 404 and change nothing."""
        await put_tiers(client, tenant_b)
        campaign_id = (await create(client, tenant_b, points_body()))["id"]
        url = f"/v1/campaigns/{campaign_id}"
        assert_problem(await client.get(url, headers=tenant_a.headers()), 404, "not-found")
        assert_problem(
            await client.patch(url, json={"name": "x"}, headers=tenant_a.headers()), 404, "not-found"
        )
        assert_problem(await step(client, tenant_a, campaign_id, "activate"), 404, "not-found")
        listed = (await client.get("/v1/campaigns", headers=tenant_a.headers())).json()["items"]
        assert listed == []
        still = (await client.get(url, headers=tenant_b.headers())).json()
        assert (still["name"], still["status"]) == ("Spring points", "draft")

    @pytest.mark.parametrize("role", [Role.OPERATIONS, Role.CUSTOMER_SERVICE, Role.FINANCE, Role.AUDITOR])
    async def test_only_brand_admins_and_marketers_write(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, role: Role
    ) -> None:
        """Other roles get 403 on create, edit and steps."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        headers = tenant_a.headers(role)
        assert_problem(
            await client.post("/v1/campaigns", json=points_body(), headers=headers), 403, "forbidden"
        )
        response = await client.patch(f"/v1/campaigns/{campaign_id}", json={"name": "x"}, headers=headers)
        assert_problem(response, 403, "forbidden")
        assert_problem(
            await client.post(f"/v1/campaigns/{campaign_id}:activate", headers=headers), 403, "forbidden"
        )

    @pytest.mark.parametrize("role", [Role.FINANCE, Role.POINT_OF_SALE])
    async def test_only_writers_auditors_customer_service_and_operations_read(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, role: Role
    ) -> None:
        """Campaign reads are for brand admins, marketers, auditors, customer service and operations."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        headers = tenant_a.headers(role)
        assert_problem(await client.get("/v1/campaigns", headers=headers), 403, "forbidden")
        assert_problem(await client.get(f"/v1/campaigns/{campaign_id}", headers=headers), 403, "forbidden")

    @pytest.mark.parametrize("role", [Role.CUSTOMER_SERVICE, Role.OPERATIONS])
    async def test_customer_service_and_operations_find_a_campaign_but_not_its_figures(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, role: Role
    ) -> None:
        """Customer service and operations list and read campaigns (to find the one whose winners they
        answer or whose prizes they ship), read-only: the live figures stay with brand admins, marketers
        and auditors."""
        campaign_id = (await create(client, tenant_a, points_body()))["id"]
        cs = tenant_a.headers(role)
        listed = await client.get("/v1/campaigns", headers=cs)
        assert listed.status_code == 200, listed.text
        assert [c["id"] for c in listed.json()["items"]] == [campaign_id]
        read = await client.get(f"/v1/campaigns/{campaign_id}", headers=cs)
        assert read.status_code == 200 and read.json()["name"] == "Spring points"
        if role is Role.CUSTOMER_SERVICE:
            winners = await client.get(f"/v1/campaigns/{campaign_id}/winners.csv", headers=cs)
            assert winners.status_code == 200, winners.text
        assert_problem(await client.get(f"/v1/campaigns/{campaign_id}/stats", headers=cs), 403, "forbidden")
        renamed = await client.patch(f"/v1/campaigns/{campaign_id}", json={"name": "x"}, headers=cs)
        assert_problem(renamed, 403, "forbidden")

    async def test_the_list_pages_by_cursor_and_filters_by_status(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Five campaigns in pages of two: three pages, each id once; `status` narrows the list."""
        created = [(await create(client, tenant_a, points_body(name=f"C{i}")))["id"] for i in range(5)]
        await step(client, tenant_a, created[0], "activate")
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        pages = 0
        while True:
            response = await client.get(
                "/v1/campaigns", params=params, headers=tenant_a.headers(Role.AUDITOR)
            )
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [c["id"] for c in body["items"]]
            pages += 1
            if body["next_cursor"] is None:
                break
            params["after"] = body["next_cursor"]
        assert sorted(seen) == sorted(created)
        assert pages == 3
        active = await client.get("/v1/campaigns", params={"status": "active"}, headers=tenant_a.headers())
        assert [c["id"] for c in active.json()["items"]] == [created[0]]


class TestOverlap:
    async def test_two_live_campaigns_may_not_tie_for_the_same_scans(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Same priority, not both stackable, overlapping schedules: the second cannot go live (409)."""
        first = await create(client, tenant_a, points_body(stackable=False, name="First"))
        assert (await step(client, tenant_a, first["id"], "activate")).status_code == 200
        second = await create(client, tenant_a, points_body(stackable=False, name="Second"))
        response = await step(client, tenant_a, second["id"], "schedule")
        assert_problem(response, 409, "campaign-overlap")
        assert first["id"] in response.json()["detail"]
        # Each way out works: another priority, or members that cannot be the same scan's.
        renamed = await client.patch(
            f"/v1/campaigns/{second['id']}", json={"priority": 11}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert renamed.status_code == 200, renamed.text
        assert (await step(client, tenant_a, second["id"], "activate")).status_code == 200
        # ... and a live edit that would make them tie again is refused the same way.
        tie = await client.patch(
            f"/v1/campaigns/{second['id']}",
            json={"priority": 10, "live_change": True},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert_problem(tie, 409, "campaign-overlap")
        rules = {**points_body()["eligibility"], "members": "existing"}
        apart = await client.patch(
            f"/v1/campaigns/{second['id']}",
            json={"priority": 10, "eligibility": rules, "live_change": True},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert apart.status_code == 200, apart.text

    async def test_stackable_or_disjoint_campaigns_go_live_together(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        later = {
            "starts_at": (NOW + dt.timedelta(days=30)).isoformat(),
            "ends_at": (NOW + dt.timedelta(days=60)).isoformat(),
        }
        bodies = [
            points_body(name="Stacks"),
            points_body(name="Stacks too"),
            points_body(name="Alone, ranked first", stackable=False, priority=20),
            points_body(name="Alone, next month", stackable=False, priority=20, **later),
        ]
        for body in bodies:
            campaign = await create(client, tenant_a, body)
            response = await step(client, tenant_a, campaign["id"], "schedule")
            assert response.status_code == 200, (body["name"], response.text)
