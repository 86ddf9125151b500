"""Prize fulfilment over HTTP: the brand reads claimed addresses (audited), exports labels, ships once."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from service.settings import Settings
from tests.campaigns.test_scan_rewards import draw_campaign, launch, scan
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

ADDRESS = {"recipient": "李雷", "phone": "13800138000", "address": "浙江省杭州市西湖区文三路 1 号"}
SHIPMENT = {"carrier": "顺丰速运", "tracking_number": "SF1234567890123"}


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


class Win:
    """A prize won by a new member: its ids and the member's cookie."""

    def __init__(self, campaign_id: str, answer: dict[str, Any]) -> None:
        self.campaign_id = campaign_id
        self.scan_id: str = answer["scan_id"]
        self.member_id: str = answer["member"]["id"]
        self.cookie = {"Cookie": f"oc_member={answer['member_token']}"}

    @property
    def claim_path(self) -> str:
        return f"/v1/members/me/prizes/{self.campaign_id}/{self.scan_id}/claim"

    @property
    def ship_path(self) -> str:
        return f"/v1/campaigns/{self.campaign_id}/prize-claims/{self.scan_id}/ship"


async def win(client: AsyncTestClient[Any], campaign_id: str, url: str) -> Win:
    answer = await scan(client, url)
    assert answer["reward"]["outcomes"][0]["result"] == "won", answer
    return Win(campaign_id, answer)


async def claim(client: AsyncTestClient[Any], won: Win, **address: Any) -> Any:
    client.cookies.clear()
    return await client.post(won.claim_path, json={**ADDRESS, **address}, headers=won.cookie)


async def claimed_wins(
    client: AsyncTestClient[Any], tenant: Tenant, issued: IssuedBatch, n: int
) -> list[Win]:
    """A draw of a physical prize with n winners, each of whom gave an address (the first a postal code)."""
    campaign_id = await launch(client, tenant, draw_campaign(stock=n))
    wins = [await win(client, campaign_id, issued.urls[i]) for i in range(n)]
    for i, won in enumerate(wins):
        extra = {"postal_code": "310012"} if i == 0 else {}
        response = await claim(client, won, recipient=f"{ADDRESS['recipient']}{i}", **extra)
        assert response.status_code == 200, response.text
    return wins


def claims_url(campaign_id: str, query: str = "") -> str:
    return f"/v1/campaigns/{campaign_id}/prize-claims{'?' + query if query else ''}"


async def audit_entries(db: psycopg.AsyncConnection[Any], action: str) -> list[tuple[Any, ...]]:
    cur = await db.execute(
        "SELECT actor, object_id, after FROM audit_log WHERE action = %s ORDER BY id", (action,)
    )
    return await cur.fetchall()


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://onecode.dev/problems/{slug}", body
    return body


class TestClaimList:
    async def test_operations_pages_through_claims_with_addresses_opened_and_every_read_audited(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """3 claims in pages of 2, oldest win first: the win, the claim and the address in clear; an
        unclaimed win is not listed; each page is an audit entry naming the range read, no address."""
        wins = await claimed_wins(client, tenant_a, issued, 3)
        campaign_id = wins[0].campaign_id
        ops = tenant_a.headers(Role.OPERATIONS)
        first = await client.get(claims_url(campaign_id, "limit=2"), headers=ops)
        assert first.status_code == 200, first.text
        assert first.json()["next_cursor"] is not None
        second = await client.get(
            claims_url(campaign_id, "limit=2"), params={"after": first.json()["next_cursor"]}, headers=ops
        )
        assert second.status_code == 200, second.text
        assert second.json()["next_cursor"] is None  # the page ending on the last claim says so
        items = first.json()["items"] + second.json()["items"]
        assert [i["scan_id"] for i in items] == [w.scan_id for w in wins]
        item = items[0]
        assert item["prize"] == "Cooler bag"
        assert item["slot"] in {1, 2, 3}
        assert item["member_id"] == wins[0].member_id
        assert item["status"] == "claimed"
        assert item["won_at"] and item["claimed_at"]
        assert (item["shipped_at"], item["carrier"], item["tracking_number"]) == (None, None, None)
        assert item["address"] == {**ADDRESS, "recipient": "李雷0", "postal_code": "310012"}
        assert items[1]["address"]["postal_code"] is None
        reads = await audit_entries(db, "campaign.prize_claims_read")
        assert [(r[1], r[2]["rows"]) for r in reads] == [(campaign_id, 2), (campaign_id, 1)]
        assert reads[1][2]["after"] == first.json()["next_cursor"]
        assert all("李雷" not in str(r[2]) and "13800138000" not in str(r[2]) for r in reads)

    async def test_the_status_filter_shows_what_waits_to_ship_and_what_left(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 3)
        campaign_id = wins[0].campaign_id
        ops = tenant_a.headers(Role.OPERATIONS)
        shipped = await client.post(wins[1].ship_path, json=SHIPMENT, headers=ops)
        assert shipped.status_code == 200, shipped.text
        waiting = (await client.get(claims_url(campaign_id, "status=claimed"), headers=ops)).json()
        assert [i["scan_id"] for i in waiting["items"]] == [wins[0].scan_id, wins[2].scan_id]
        left = (await client.get(claims_url(campaign_id, "status=shipped"), headers=ops)).json()
        assert [(i["scan_id"], i["carrier"]) for i in left["items"]] == [(wins[1].scan_id, "顺丰速运")]
        wrong = await client.get(claims_url(campaign_id, "status=lost"), headers=ops)
        assert_problem(wrong, 422, "validation-error")
        bad_cursor = await client.get(claims_url(campaign_id, "after=yesterday"), headers=ops)
        assert assert_problem(bad_cursor, 422, "validation-error")["errors"][0]["field"] == "after"

    async def test_roles_who_ship_read_customer_service_one_winner_others_never(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """Brand admins and operations read the list; customer service only names a winner (to answer them);
        marketers, finance, auditors and tills get a 403 problem."""
        wins = await claimed_wins(client, tenant_a, issued, 2)
        url = claims_url(wins[0].campaign_id)
        for role in (Role.BRAND_ADMIN, Role.OPERATIONS):
            assert (await client.get(url, headers=tenant_a.headers(role))).status_code == 200
        for role in (Role.MARKETER, Role.FINANCE, Role.AUDITOR, Role.POINT_OF_SALE):
            assert_problem(await client.get(url, headers=tenant_a.headers(role)), 403, "forbidden")
        service = tenant_a.headers(Role.CUSTOMER_SERVICE)
        assert_problem(await client.get(url, headers=service), 403, "forbidden")
        one = await client.get(url, params={"member_id": wins[1].member_id}, headers=service)
        assert one.status_code == 200, one.text
        assert [i["scan_id"] for i in one.json()["items"]] == [wins[1].scan_id]
        csv_url = f"/v1/campaigns/{wins[0].campaign_id}/prize-claims.csv"
        assert_problem(await client.get(csv_url, headers=service), 403, "forbidden")
        ship = await client.post(wins[0].ship_path, json=SHIPMENT, headers=service)
        assert_problem(ship, 403, "forbidden")
        ship = await client.post(wins[0].ship_path, json=SHIPMENT, headers=tenant_a.headers(Role.MARKETER))
        assert_problem(ship, 403, "forbidden")

    async def test_another_brand_finds_no_campaign_no_claim_and_ships_nothing(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 1)
        campaign_id = wins[0].campaign_id
        foreign = tenant_b.headers(Role.OPERATIONS)
        assert_problem(await client.get(claims_url(campaign_id), headers=foreign), 404, "not-found")
        csv_url = f"/v1/campaigns/{campaign_id}/prize-claims.csv"
        assert_problem(await client.get(csv_url, headers=foreign), 404, "not-found")
        assert_problem(await client.post(wins[0].ship_path, json=SHIPMENT, headers=foreign), 404, "not-found")
        cur = await db.execute("SELECT status FROM prize_claims")
        assert await cur.fetchall() == [("claimed",)]
        assert await audit_entries(db, "campaign.prize_claims_read") == []

    async def test_an_erased_winner_leaves_a_claim_without_an_address(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Erasure drops the sealed address (campaigns/members/sql/profiles.sql): nothing to ship to."""
        wins = await claimed_wins(client, tenant_a, issued, 1)
        await db.execute("UPDATE prize_claims SET address_sealed = NULL")
        found = await client.get(claims_url(wins[0].campaign_id), headers=tenant_a.headers(Role.OPERATIONS))
        [item] = found.json()["items"]
        assert (item["status"], item["address"]) == ("claimed", None)


class TestShip:
    async def test_a_claim_ships_once_then_the_winner_sees_it_and_cannot_change_the_address(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        [won] = await claimed_wins(client, tenant_a, issued, 1)
        ops = tenant_a.headers(Role.OPERATIONS)
        shipped = await client.post(won.ship_path, json=SHIPMENT, headers=ops)
        assert shipped.status_code == 200, shipped.text
        body = shipped.json()
        assert (body["status"], body["carrier"], body["tracking_number"]) == (
            "shipped",
            "顺丰速运",
            "SF1234567890123",
        )
        assert body["shipped_at"] is not None
        assert body["address"]["recipient"] == "李雷0"  # as it stood when it left, to check the label
        again = await client.post(
            won.ship_path, json={"carrier": "EMS", "tracking_number": "EA123456789CN"}, headers=ops
        )
        problem = assert_problem(again, 409, "prize-already-shipped")
        assert "SF1234567890123" in problem["detail"]
        # The winner sees the parcel on its way, and the address is fixed from now on.
        client.cookies.clear()
        [prize] = (await client.get("/v1/members/me/rewards", headers=won.cookie)).json()["prizes"]
        assert (prize["claim_status"], prize["carrier"], prize["tracking_number"]) == (
            "shipped",
            "顺丰速运",
            "SF1234567890123",
        )
        assert prize["shipped_at"] == body["shipped_at"]
        assert_problem(await claim(client, won, address="上海市南京路 88 号"), 409, "prize-not-claimable")
        [entry] = await audit_entries(db, "campaign.prize_shipped")
        assert entry[1] == f"{won.campaign_id}/{won.scan_id}"
        assert entry[2] == {"member_id": won.member_id, **SHIPMENT}
        cur = await db.execute("SELECT carrier, tracking_number FROM prize_claims")
        assert await cur.fetchall() == [("顺丰速运", "SF1234567890123")]

    async def test_two_operators_shipping_at_once_ship_it_once(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        [won] = await claimed_wins(client, tenant_a, issued, 1)
        ops = tenant_a.headers(Role.OPERATIONS)
        answers = await asyncio.gather(
            *(
                client.post(
                    won.ship_path, json={**SHIPMENT, "tracking_number": f"SF00000000{n}"}, headers=ops
                )
                for n in range(4)
            )
        )
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]

    async def test_a_win_without_an_address_or_not_won_here_cannot_ship(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """Unclaimed: 409 prize-not-claimed; an unknown scan: 404; a points prize: 409 prize-not-physical."""
        campaign_id = await launch(client, tenant_a, draw_campaign(stock=1, stackable=True))
        won = await win(client, campaign_id, issued.urls[0])
        ops = tenant_a.headers(Role.OPERATIONS)
        unclaimed = await client.post(won.ship_path, json=SHIPMENT, headers=ops)
        assert "shipping address" in assert_problem(unclaimed, 409, "prize-not-claimed")["detail"]
        unknown = f"/v1/campaigns/{campaign_id}/prize-claims/{uuid.uuid4()}/ship"
        assert_problem(await client.post(unknown, json=SHIPMENT, headers=ops), 404, "not-found")
        points_prize = {
            "name": "Bonus",
            "kind": "points",
            "weight": 1,
            "stock": 1,
            "cost_cents": 50,
            "points": 50,
        }
        points_draw = await launch(
            client, tenant_a, draw_campaign(name="Bonus draw", prizes=[points_prize], stackable=True)
        )
        bonus = await win(client, points_draw, issued.urls[1])
        not_shipped = await client.post(bonus.ship_path, json=SHIPMENT, headers=ops)
        assert_problem(not_shipped, 409, "prize-not-physical")

    async def test_a_mistyped_tracking_number_is_corrected_and_audited_with_both(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """PUT .../shipment changes the courier and tracking number of a shipped prize (not when it
        shipped); the winner sees the new one; the audit keeps both. Before shipping: 409 prize-not-shipped;
        another brand's or an unknown win: 404; a marketer: 403."""
        [won] = await claimed_wins(client, tenant_a, issued, 1)
        ops = tenant_a.headers(Role.OPERATIONS)
        correction_path = won.ship_path.removesuffix("/ship") + "/shipment"
        fixed = {"carrier": "顺丰速运", "tracking_number": "SF1234567890124"}
        early = await client.put(correction_path, json=fixed, headers=ops)
        assert "ship it first" in assert_problem(early, 409, "prize-not-shipped")["detail"]
        shipped = (await client.post(won.ship_path, json=SHIPMENT, headers=ops)).json()
        corrected = await client.put(correction_path, json=fixed, headers=ops)
        assert corrected.status_code == 200, corrected.text
        body = corrected.json()
        assert (body["tracking_number"], body["shipped_at"]) == ("SF1234567890124", shipped["shipped_at"])
        assert body["address"]["recipient"] == "李雷0"
        client.cookies.clear()
        [prize] = (await client.get("/v1/members/me/rewards", headers=won.cookie)).json()["prizes"]
        assert prize["tracking_number"] == "SF1234567890124"
        cur = await db.execute(
            "SELECT before, after FROM audit_log WHERE action = 'campaign.prize_shipment_corrected'"
        )
        assert await cur.fetchall() == [(SHIPMENT, fixed)]
        assert_problem(
            await client.put(correction_path, json=fixed, headers=tenant_a.headers(Role.MARKETER)),
            403,
            "forbidden",
        )
        unknown = f"/v1/campaigns/{won.campaign_id}/prize-claims/{uuid.uuid4()}/shipment"
        assert_problem(await client.put(unknown, json=fixed, headers=ops), 404, "not-found")

    @pytest.mark.parametrize(
        ("wrong", "field"),
        [
            ({"carrier": ""}, "carrier"),
            ({"carrier": " SF"}, "carrier"),
            ({"carrier": "SF\nExpress"}, "carrier"),
            ({"carrier": "x" * 41}, "carrier"),
            ({"tracking_number": "SF1"}, "tracking_number"),
            ({"tracking_number": "=SUM(A1)"}, "tracking_number"),
            ({"tracking_number": "1" * 41}, "tracking_number"),
            ({"note": "fragile"}, "note"),
        ],
    )
    async def test_a_shipment_names_a_courier_and_a_tracking_number(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        wrong: dict[str, str],
        field: str,
    ) -> None:
        [won] = await claimed_wins(client, tenant_a, issued, 1)
        response = await client.post(
            won.ship_path, json={**SHIPMENT, **wrong}, headers=tenant_a.headers(Role.OPERATIONS)
        )
        assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == field
        spaced = await client.post(
            won.ship_path,
            json={"carrier": "UPS", "tracking_number": "1Z 999 AA1 01 2345 6784"},
            headers=tenant_a.headers(Role.OPERATIONS),
        )
        assert spaced.status_code == 200, spaced.text


class TestClaimValidation:
    async def test_an_undeliverable_address_is_refused_field_by_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """QA's case: a phone enrolment refuses and a postal code of letters, both named at once."""
        campaign_id = await launch(client, tenant_a, draw_campaign(stock=1))
        won = await win(client, campaign_id, issued.urls[0])
        qa = {"recipient": "李雷", "phone": "12345", "address": "西湖区文三路 1 号", "postal_code": "abc"}
        client.cookies.clear()
        response = await client.post(won.claim_path, json=qa, headers=won.cookie)
        errors = assert_problem(response, 422, "validation-error")["errors"]
        assert {e["field"]: e["message"] for e in errors} == {
            "phone": "not a valid phone number",
            "postal_code": "a postal code in mainland China is 6 digits",
        }
        for wrong, field in (
            ({"recipient": "   "}, "recipient"),
            ({"address": "      "}, "address"),
            ({"phone": "1380013800"}, "phone"),
            ({"phone": "+86 138 0013 80001"}, "phone"),
            ({"postal_code": "31001"}, "postal_code"),
            ({"postal_code": "3100122"}, "postal_code"),
            ({"recipient": "x" * 101}, "recipient"),
        ):
            response = await claim(client, won, **wrong)
            assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == field, wrong
        cur_claims = await client.get(claims_url(campaign_id), headers=tenant_a.headers(Role.OPERATIONS))
        assert cur_claims.json()["items"] == []  # nothing was recorded

    @pytest.mark.parametrize(
        ("typed", "stored"),
        [
            ("+86 138-0013-8000", "13800138000"),
            ("0086 13800138000", "13800138000"),
            ("010-6552 9988", "01065529988"),
            ("+852 9123 4567", "+85291234567"),
        ],
    )
    async def test_a_phone_is_kept_as_a_courier_dials_it(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch, typed: str, stored: str
    ) -> None:
        """Chinese numbers as dialled at home, others in E.164; names and addresses trimmed; an empty
        postal code (an untouched form field) is none."""
        campaign_id = await launch(client, tenant_a, draw_campaign(stock=1))
        won = await win(client, campaign_id, issued.urls[0])
        response = await claim(client, won, phone=typed, recipient=" 韩梅梅 ", postal_code="")
        assert response.status_code == 200, response.text
        found = await client.get(claims_url(campaign_id), headers=tenant_a.headers(Role.OPERATIONS))
        [item] = found.json()["items"]
        assert item["address"] == {**ADDRESS, "recipient": "韩梅梅", "phone": stored, "postal_code": None}


class TestLabelExport:
    async def test_the_claims_to_ship_as_csv_with_addresses_in_files_and_audited(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """status=claimed leaves out what shipped; a BOM for Excel, the header once, files of `limit`
        linked by `Link: rel=next`; a name typed as a formula stays text; each file is an audit entry."""
        wins = await claimed_wins(client, tenant_a, issued, 4)
        campaign_id = wins[0].campaign_id
        assert (
            await claim(client, wins[3], recipient="=HYPERLINK(1)", phone="+852 9123 4567")
        ).status_code == 200
        ops = tenant_a.headers(Role.OPERATIONS)
        assert (await client.post(wins[1].ship_path, json=SHIPMENT, headers=ops)).status_code == 200
        url = f"/v1/campaigns/{campaign_id}/prize-claims.csv?status=claimed&limit=2"
        first = await client.get(url, headers=ops)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("text/csv")
        assert "attachment" in first.headers["content-disposition"]
        assert first.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(first.content.decode("utf-8-sig"))))
        assert rows[0] == [
            "recipient",
            "phone",
            "address",
            "postal_code",
            "prize",
            "status",
            "claimed_at",
            "shipped_at",
            "carrier",
            "tracking_number",
            "won_at",
            "scan_id",
            "member_id",
        ]
        assert rows[1][:6] == ["李雷0", "13800138000", ADDRESS["address"], "310012", "Cooler bag", "claimed"]
        assert rows[1][11:] == [wins[0].scan_id, wins[0].member_id]
        assert len(rows) == 3
        next_url = first.headers["link"].split(">")[0].lstrip("<")
        assert "status=claimed" in next_url
        second = await client.get(next_url, headers=ops)
        assert second.status_code == 200, second.text
        [last] = list(csv.reader(io.StringIO(second.content.decode())))  # no header, no BOM after the first
        assert last[0] == "'=HYPERLINK(1)"
        assert (
            last[1] == "+85291234567"
        )  # a number as dialled is no formula: no quote for the courier to type
        assert "link" not in second.headers  # the last claim: no empty file after it
        assert [r[11] for r in [*rows[1:], last]] == [wins[0].scan_id, wins[2].scan_id, wins[3].scan_id]
        exports = await audit_entries(db, "campaign.prize_claims_export")
        assert [(e[2]["rows"], e[2]["status"]) for e in exports] == [(2, "claimed"), (1, "claimed")]
        everything = await client.get(f"/v1/campaigns/{campaign_id}/prize-claims.csv", headers=ops)
        shipped = next(
            r for r in csv.reader(io.StringIO(everything.content.decode("utf-8-sig"))) if r[5] == "shipped"
        )
        assert shipped[8:10] == ["顺丰速运", "SF1234567890123"]
        assert shipped[7]  # shipped_at
