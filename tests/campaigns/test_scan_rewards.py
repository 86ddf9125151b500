"""Campaigns reward scans over HTTP: points and draws, never beyond stock, budget or caps, under load."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
import redis.asyncio
from litestar.testing import AsyncTestClient

from campaigns import draws
from service.models import Role
from service.settings import Settings
from tests.campaigns.test_campaign_api import create, step
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=600)


def device() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}"


async def scan(client: AsyncTestClient[Any], code: str, device_id: str | None = None, **extra: Any) -> Any:
    """A scan from a phone without a member cookie: the device (or an explicit cookie) names the member."""
    client.cookies.clear()
    response = await client.post(
        "/v1/scans",
        json={"code": code, "device_id": device_id or device()},
        headers=extra.pop("headers", {}),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def scan_at(client: AsyncTestClient[Any], code: str, location: dict[str, float]) -> Any:
    """A scan from a new phone that shares its location."""
    client.cookies.clear()
    response = await client.post(
        "/v1/scans", json={"code": code, "device_id": device(), "location": location}
    )
    assert response.status_code == 200, response.text
    return response.json()


def outcome(answer: Any) -> str | None:
    """The first campaign's result for a scan; None once the book knew the campaign was sold out."""
    reward = answer["reward"]
    return None if reward is None else str(reward["outcomes"][0]["result"])


def points_campaign(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Scan and earn",
        "kind": "points",
        "starts_at": (NOW - dt.timedelta(days=1)).isoformat(),
        "ends_at": (NOW + dt.timedelta(days=30)).isoformat(),
        "budget_cents": 1_000_000,
        "points_reward": {"points": 100},
    }
    return {**body, **extra}


def draw_campaign(stock: int = 5, cost_cents: int = 2_000, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Lucky cap",
        "kind": "lucky_draw",
        "starts_at": (NOW - dt.timedelta(days=1)).isoformat(),
        "ends_at": (NOW + dt.timedelta(days=30)).isoformat(),
        "budget_cents": 10_000_000,
        "no_prize_weight": 0,
        "prizes": [
            {"name": "Cooler bag", "kind": "physical", "weight": 1, "stock": stock, "cost_cents": cost_cents}
        ],
    }
    return {**body, **extra}


async def launch(client: AsyncTestClient[Any], tenant: Tenant, body: dict[str, Any]) -> str:
    campaign = await create(client, tenant, body)
    response = await step(client, tenant, campaign["id"], "activate")
    assert response.status_code == 200, response.text
    campaign_id: str = campaign["id"]
    return campaign_id


async def figures(db: psycopg.AsyncConnection[Any], campaign_id: str) -> dict[str, int]:
    cur = await db.execute(
        "SELECT (SELECT coalesce(sum(awarded), 0) FROM prizes WHERE campaign_id = %(c)s),"
        " (SELECT coalesce(sum(stock - awarded), 0) FROM prizes WHERE campaign_id = %(c)s),"
        " (SELECT spent_cents FROM campaigns WHERE id = %(c)s),"
        " (SELECT count(*) FROM draws WHERE campaign_id = %(c)s AND result = 'won'),"
        " (SELECT count(*) FROM points_awards WHERE campaign_id = %(c)s),"
        " (SELECT coalesce(sum(spent_cents), 0) FROM campaign_days WHERE campaign_id = %(c)s)",
        {"c": campaign_id},
    )
    row = await cur.fetchone()
    assert row is not None
    names = ["awarded", "stock_left", "spent", "winners", "points_awards", "spent_by_day"]
    return dict(zip(names, map(int, row), strict=True))


async def flush_redis(settings: Settings) -> None:
    r = redis.asyncio.Redis.from_url(settings.redis_url or "")
    async for key in r.scan_iter(match=f"{settings.redis_prefix}*"):
        await r.delete(key)
    await r.aclose()


class TestPoints:
    async def test_a_first_scan_earns_the_campaigns_points_once(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """First scan: +100 points in the answer, the balance and the ledger; the repeat earns nothing."""
        campaign_id = await launch(client, tenant_a, points_campaign())
        first = await scan(client, issued.urls[0])
        assert first["reward"]["points"] == 100
        [outcome] = first["reward"]["outcomes"]
        assert outcome["campaign_id"] == campaign_id
        assert outcome["result"] == "awarded"
        assert first["member"]["points_balance"] == 100
        repeat = await scan(client, issued.urls[0])
        assert repeat["verdict"] == "genuine_repeat"
        assert repeat["reward"] is None
        cur = await db.execute(
            "SELECT amount, kind, source FROM points_ledger WHERE member_id = %s", (first["member"]["id"],)
        )
        assert await cur.fetchall() == [(100, "earn", f"scan:{first['scan_id']}")]
        assert (await figures(db, campaign_id))["spent"] == 100  # 100 points at 1 cent each

    async def test_the_same_member_adds_up_across_codes(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        campaign = points_campaign(points_reward={"points": 30, "cents_per_point": 2})
        await launch(client, tenant_a, campaign)
        dev = device()
        answers = [await scan(client, issued.urls[n], dev) for n in range(3)]
        assert [a["member"]["points_balance"] for a in answers] == [30, 60, 90]

    async def test_budget_exhaustion_stops_rewards_at_the_budget_exactly(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Budget for 7 awards, 40 concurrent first scans: 7 awarded, spend equals the budget."""
        campaign_id = await launch(client, tenant_a, points_campaign(budget_cents=700))
        answers = await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(40)))
        results = [outcome(a) for a in answers]
        assert results.count("awarded") == 7
        assert results.count("over_budget") + results.count(None) == 33
        found = await figures(db, campaign_id)
        assert found["spent"] == found["spent_by_day"] == 700
        assert found["points_awards"] == 7

    async def test_a_daily_budget_holds_within_the_total(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        campaign_id = await launch(client, tenant_a, points_campaign(daily_budget_cents=300))
        await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(10)))
        assert (await figures(db, campaign_id))["spent"] == 300

    async def test_a_cap_added_to_a_live_campaign_counts_what_it_gave_before(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Awards of an uncapped campaign keep no per-member counts (only caps read them); a cap added
        while it is live counts the member's earlier awards: 3 before, a cap of 4, one more, then capped."""
        campaign_id = await launch(client, tenant_a, points_campaign())
        token = (await scan(client, issued.urls[0]))["member_token"]
        cookie = {"Cookie": f"oc_member={token}"}
        for n in (1, 2):
            assert outcome(await scan(client, issued.urls[n], headers=cookie)) == "awarded"
        cur = await db.execute("SELECT count(*) FROM member_wins WHERE campaign_id = %s", (campaign_id,))
        assert await cur.fetchone() == (0,)
        response = await client.patch(
            f"/v1/campaigns/{campaign_id}",
            json={"member_campaign_cap": 4, "live_change": True},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert response.status_code == 200, response.text
        assert outcome(await scan(client, issued.urls[3], headers=cookie)) == "awarded"
        assert outcome(await scan(client, issued.urls[4], headers=cookie)) == "capped"
        assert (await figures(db, campaign_id))["points_awards"] == 4

    async def test_member_caps_hold_under_concurrency(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """One member scanning 20 codes at once, capped at 3 a campaign: exactly 3 awards."""
        campaign_id = await launch(client, tenant_a, points_campaign(member_campaign_cap=3))
        dev = device()
        token = (await scan(client, issued.urls[100], dev))["member_token"]  # the 1st award
        answers = await asyncio.gather(
            *(scan(client, issued.urls[n], headers={"Cookie": f"oc_member={token}"}) for n in range(20))
        )
        results = [a["reward"]["outcomes"][0]["result"] for a in answers]
        assert results.count("awarded") == 2
        assert results.count("capped") == 18
        assert (await figures(db, campaign_id))["points_awards"] == 3
        assert max(a["member"]["points_balance"] for a in answers) == 300


class TestEligibility:
    async def test_only_the_named_products_and_new_members_are_rewarded(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        settings: Settings,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        other = await issue_batch(db, settings, tenant_a.brand_id, quantity=5, gtin=None, name="Other")
        await db.commit()
        body = points_campaign(eligibility={"product_ids": [str(issued.product.id)], "members": "new"})
        await launch(client, tenant_a, body)
        dev = device()
        assert (await scan(client, other.urls[0], dev))["reward"] is None  # another product
        # The device's member was created by the scan above: no longer new.
        assert (await scan(client, issued.urls[1], dev))["reward"] is None
        assert (await scan(client, issued.urls[2]))["reward"]["points"] == 100  # a new device: new member

    async def test_a_regional_campaign_rewards_scans_in_its_regions_only(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """Zhejiang only: a scan located in Hangzhou earns, one in Guangzhou or of unknown region does not."""
        campaign_id = await launch(client, tenant_a, points_campaign(eligibility={"regions": ["CN-ZJ"]}))
        hangzhou = {"lat": 30.27, "lng": 120.16, "accuracy_m": 20.0}
        guangzhou = {"lat": 23.13, "lng": 113.26, "accuracy_m": 20.0}
        assert (await scan_at(client, issued.urls[0], hangzhou))["reward"]["points"] == 100
        assert (await scan_at(client, issued.urls[1], guangzhou))["reward"] is None
        assert (await scan(client, issued.urls[2]))["reward"] is None
        stats = await client.get(
            f"/v1/campaigns/{campaign_id}/stats", headers=tenant_a.headers(Role.MARKETER)
        )
        assert stats.json()["by_region"] == [{"region": "CN-ZJ", "rewarded_scans": 1, "spent_cents": 100}]
        unknown = await client.post(
            "/v1/campaigns",
            json=points_campaign(eligibility={"regions": ["CN-31"]}),
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["field"] == "eligibility.regions"

    async def test_a_sold_out_campaign_yields_the_scan_to_the_next_one(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """The big campaign's budget covers one award: once the book knows, the fallback campaign rewards."""
        big = await launch(client, tenant_a, points_campaign(name="Big", priority=5, budget_cents=100))
        fallback = await launch(
            client, tenant_a, points_campaign(name="Always", priority=1, points_reward={"points": 5})
        )
        first = await scan(client, issued.urls[0])
        assert [(o["campaign_id"], o["result"]) for o in first["reward"]["outcomes"]] == [(big, "awarded")]
        await client.app.state.onecode.campaigns.reload()  # what every worker does each second
        second = await scan(client, issued.urls[1])
        assert [(o["campaign_id"], o["points"]) for o in second["reward"]["outcomes"]] == [(fallback, 5)]

    async def test_a_paused_campaign_rewards_nothing_and_resumes(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        campaign_id = await launch(client, tenant_a, points_campaign())
        assert (await step(client, tenant_a, campaign_id, "pause")).status_code == 200
        assert (await scan(client, issued.urls[0]))["reward"] is None
        assert (await step(client, tenant_a, campaign_id, "resume")).status_code == 200
        assert (await scan(client, issued.urls[1]))["reward"]["points"] == 100

    async def test_a_campaign_not_yet_started_rewards_nothing(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        later = points_campaign(starts_at=(NOW + dt.timedelta(days=1)).isoformat())
        campaign = await create(client, tenant_a, later)
        assert (await step(client, tenant_a, campaign["id"], "schedule")).status_code == 200
        assert (await scan(client, issued.urls[0]))["reward"] is None

    async def test_a_scheduled_campaign_starts_and_ends_by_itself(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Scheduled to run for 3 s from 1 s ahead: it becomes active, rewards, then ends (audited)."""
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        body = draw_campaign(starts_at=soon.isoformat(), ends_at=(soon + dt.timedelta(seconds=3)).isoformat())
        campaign = await create(client, tenant_a, body)
        assert (await step(client, tenant_a, campaign["id"], "schedule")).status_code == 200
        assert (await scan(client, issued.urls[0]))["reward"] is None
        await asyncio.sleep(2.5)
        assert (await scan(client, issued.urls[1]))["reward"]["outcomes"][0]["result"] == "won"
        await asyncio.sleep(3)
        assert (await scan(client, issued.urls[2]))["reward"] is None
        cur = await db.execute(
            "SELECT c.status, c.seed_revealed IS NOT NULL,"
            " (SELECT array_agg(action ORDER BY id) FROM audit_log a WHERE a.object_id = c.id::text)"
            " FROM campaigns c WHERE c.id = %s",
            (campaign["id"],),
        )
        assert await cur.fetchone() == (
            "ended",
            True,
            ["campaign.create", "campaign.schedule", "campaign.activate", "campaign.end"],
        )

    async def test_stacking_and_priority(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """A non-stackable campaign of higher priority rewards alone; stackable ones reward together."""
        exclusive = await launch(client, tenant_a, points_campaign(name="Top", priority=5))
        await launch(client, tenant_a, points_campaign(name="Low", priority=1, stackable=True))
        first = await scan(client, issued.urls[0])
        assert [o["campaign_id"] for o in first["reward"]["outcomes"]] == [exclusive]
        assert (await step(client, tenant_a, exclusive, "end")).status_code == 200
        await launch(
            client,
            tenant_a,
            points_campaign(name="Also", priority=0, stackable=True, points_reward={"points": 5}),
        )
        both = await scan(client, issued.urls[1])
        assert both["reward"]["points"] == 105
        assert {o["campaign_name"] for o in both["reward"]["outcomes"]} == {"Low", "Also"}


class TestDraws:
    async def test_500_concurrent_first_scans_for_5_prizes_give_exactly_5_winners(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        campaign_id = await launch(client, tenant_a, draw_campaign())
        answers = await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(500)))
        results = [outcome(a) for a in answers]
        assert results.count("won") == 5
        assert results.count("sold_out") + results.count(None) == 495
        assert await figures(db, campaign_id) == {
            "awarded": 5,
            "stock_left": 0,
            "spent": 10_000,
            "winners": 5,
            "points_awards": 0,
            "spent_by_day": 10_000,
        }

    async def test_the_same_with_redis_flushed_halfway(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
    ) -> None:
        campaign_id = await launch(client, tenant_a, draw_campaign())
        first_half = [asyncio.ensure_future(scan(client, issued.urls[n])) for n in range(250)]
        await asyncio.sleep(0)
        await flush_redis(settings)
        second_half = [asyncio.ensure_future(scan(client, issued.urls[n])) for n in range(250, 500)]
        # The first half again: repeats now, whatever Redis forgot; they must win nothing more.
        again = [asyncio.ensure_future(scan(client, issued.urls[n])) for n in range(0, 500, 10)]
        answers = await asyncio.gather(*first_half, *second_half, *again)
        won = [a for a in answers if a["reward"] and a["reward"]["outcomes"][0]["result"] == "won"]
        assert len(won) == 5
        assert await figures(db, campaign_id) == {
            "awarded": 5,
            "stock_left": 0,
            "spent": 10_000,
            "winners": 5,
            "points_awards": 0,
            "spent_by_day": 10_000,
        }

    async def test_a_draw_stops_at_its_budget_and_its_member_cap(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Stock 50 but money for 3: three winners; one member drawing 30 times, capped at 2, wins twice."""
        broke = await launch(client, tenant_a, draw_campaign(stock=50, cost_cents=1_000, budget_cents=3_000))
        results = [
            outcome(a) for a in await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(60)))
        ]
        assert (results.count("won"), results.count("over_budget") + results.count(None)) == (3, 57)
        assert (await figures(db, broke))["spent"] == 3_000
        assert (await step(client, tenant_a, broke, "end")).status_code == 200
        await launch(client, tenant_a, draw_campaign(stock=100, member_campaign_cap=2))
        token = (await scan(client, issued.urls[100]))["member_token"]
        cookie = {"Cookie": f"oc_member={token}"}
        results = [
            a["reward"]["outcomes"][0]["result"]
            for a in await asyncio.gather(
                *(scan(client, issued.urls[n], headers=cookie) for n in range(101, 130))
            )
        ]
        assert (results.count("won"), results.count("capped")) == (1, 28)

    async def test_a_points_prize_lands_in_the_ledger_and_cash_in_the_payout_outbox(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        prizes = [
            {"name": "50 points", "kind": "points", "weight": 1, "stock": 1, "cost_cents": 50, "points": 50},
            {"name": "Red packet", "kind": "cash", "weight": 1, "stock": 1, "cost_cents": 888},
        ]
        await launch(client, tenant_a, draw_campaign(prizes=prizes))
        answers = [await scan(client, issued.urls[n]) for n in range(10)]
        kinds = {
            a["reward"]["outcomes"][0]["prize"]["kind"]: a
            for a in answers
            if a["reward"]["outcomes"][0]["prize"]
        }
        assert set(kinds) == {"points", "cash"}
        assert kinds["points"]["reward"]["points"] == 50
        assert kinds["points"]["member"]["points_balance"] == 50
        cur = await db.execute("SELECT amount_cents, scan_id FROM payout_outbox")
        assert await cur.fetchall() == [(888, uuid.UUID(kinds["cash"]["scan_id"]))]

    async def test_verify_draws_reproduces_every_outcome_after_the_end(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        # Stock for every scan: once a prize sells out, the book stops drawing for it (its hint, reloaded
        # every second), and how many scans drew would depend on the machine's speed.
        body = draw_campaign(stock=30, no_prize_weight=2)
        campaign_id = await launch(client, tenant_a, body)
        await asyncio.gather(*(scan(client, issued.urls[n]) for n in range(30)))
        assert (await step(client, tenant_a, campaign_id, "end")).status_code == 200
        audit = await draws.audit_draws(db, uuid.UUID(campaign_id))
        assert audit.checked == 30
        assert audit.mismatched == []
        # Tampering with one recorded outcome is caught.
        await db.execute(
            "UPDATE draws SET drawn_prize_id = NULL WHERE scan_id = (SELECT scan_id FROM draws"
            " WHERE campaign_id = %(c)s AND drawn_prize_id IS NOT NULL LIMIT 1)",
            {"c": campaign_id},
        )
        assert len((await draws.audit_draws(db, uuid.UUID(campaign_id))).mismatched) == 1

    async def test_another_brands_campaign_never_rewards_our_scans(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant, issued: IssuedBatch
    ) -> None:
        await launch(client, tenant_b, draw_campaign())
        assert (await scan(client, issued.urls[0]))["reward"] is None


class TestFiguresAndWinners:
    async def test_stats_add_up_to_what_the_scans_were_given(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant, issued: IssuedBatch
    ) -> None:
        """Spend, rewarded scans, participants, draws by result and prize figures, for readers only."""
        points = await launch(client, tenant_a, points_campaign(stackable=True))
        draw = await launch(client, tenant_a, draw_campaign(stock=2, stackable=True))
        dev = device()
        for n in range(4):
            await scan(client, issued.urls[n], dev if n < 2 else None)
        response = await client.get(f"/v1/campaigns/{draw}/stats", headers=tenant_a.headers(Role.AUDITOR))
        assert response.status_code == 200, response.text
        figures = response.json()
        assert figures["totals"] == {
            "rewarded_scans": 4,
            "participants": 3,
            "points_given": 0,
            "prizes_won": 2,
            "coupons_issued": 0,
            "coupons_used": 0,
        }
        assert figures["spend"]["spent_cents"] == 4_000
        assert figures["spend"]["remaining_cents"] == 10_000_000 - 4_000
        assert {r["result"]: r["draws"] for r in figures["draw_results"]} == {"won": 2, "sold_out": 2}
        assert [(p["awarded"], p["stock"], p["spent_cents"]) for p in figures["prizes"]] == [(2, 2, 4_000)]
        [today] = figures["by_day"]
        assert (today["rewarded_scans"], today["spent_cents"]) == (4, 4_000)
        earned = (await client.get(f"/v1/campaigns/{points}/stats", headers=tenant_a.headers())).json()
        assert earned["totals"]["points_given"] == 400
        foreign = await client.get(f"/v1/campaigns/{draw}/stats", headers=tenant_b.headers())
        assert foreign.status_code == 404

    async def test_winners_export_masks_phones_pages_and_is_audited(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        draw = await launch(client, tenant_a, draw_campaign(stock=3))
        member_id = uuid.uuid4()
        await db.execute(
            "INSERT INTO members (id, brand_id, phone_last4) VALUES (%s, %s, '4321')",
            (member_id, tenant_a.brand_id),
        )
        scans = [await scan(client, issued.urls[n]) for n in range(3)]
        await db.execute(
            "UPDATE draws SET member_id = %s WHERE scan_id = %s", (member_id, scans[0]["scan_id"])
        )
        url = f"/v1/campaigns/{draw}/winners.csv?limit=2"
        first = await client.get(url, headers=tenant_a.headers(Role.MARKETER))
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("text/csv")
        lines = first.text.splitlines()
        assert lines[0] == "won_at,prize,prize_kind,slot,phone,member_id,scan_id,claim_status"
        assert lines[1].split(",")[4] == "*******4321"
        assert len(lines) == 3
        next_url = first.headers["link"].split(">")[0].lstrip("<")
        second = await client.get(next_url, headers=tenant_a.headers(Role.MARKETER))
        assert len(second.text.splitlines()) == 1  # no header on later pages
        assert "link" not in second.headers  # the last winner: no empty file after it
        assert {line.split(",")[3] for line in [*lines[1:], second.text.strip()]} == {"1", "2", "3"}
        assert (await client.get(url, headers=tenant_a.headers(Role.AUDITOR))).status_code == 403
        cur = await db.execute("SELECT count(*) FROM audit_log WHERE action = 'campaign.winners_export'")
        assert await cur.fetchone() == (2,)


class TestPrizeClaims:
    async def test_a_physical_prize_is_claimed_with_a_sealed_address(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        draw = await launch(client, tenant_a, draw_campaign(stock=1))
        won = await scan(client, issued.urls[0])
        assert won["reward"]["outcomes"][0]["prize"]["needs_claim"] is True
        cookie = {"Cookie": f"oc_member={won['member_token']}"}
        address = {"recipient": "Li Lei", "phone": "13800138000", "address": "88 Nanjing Rd, Shanghai"}
        path = f"/v1/members/me/prizes/{draw}/{won['scan_id']}/claim"
        client.cookies.clear()
        claimed = await client.post(path, json=address, headers=cookie)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["status"] == "claimed"
        cur = await db.execute("SELECT address_sealed FROM prize_claims")
        row = await cur.fetchone()
        assert row is not None and b"Nanjing" not in bytes(row[0]) and b"13800138000" not in bytes(row[0])
        prizes = (await client.get("/v1/members/me/rewards", headers=cookie)).json()["prizes"]
        assert prizes[0]["claim_status"] == "claimed"
        # The member's data export (PIPL) holds the draw and the address it was given, opened.
        exported = (await client.get("/v1/members/me/export", headers=cookie)).json()
        assert [(d["scan_id"], d["result"]) for d in exported["draws"]] == [(won["scan_id"], "won")]
        [claim] = exported["prize_claims"]
        assert claim["shipping"] == {**address, "postal_code": None}
        assert (claim["shipped_at"], claim["carrier"], claim["tracking_number"]) == (None, None, None)
        # Another member cannot claim it; a shipped prize's address is fixed; bad input is a 422.
        other = (await scan(client, issued.urls[1]))["member_token"]
        client.cookies.clear()
        stranger = await client.post(path, json=address, headers={"Cookie": f"oc_member={other}"})
        assert stranger.status_code == 404
        shipped = await client.post(
            f"/v1/campaigns/{draw}/prize-claims/{won['scan_id']}/ship",
            json={"carrier": "SF Express", "tracking_number": "SF1234567890"},
            headers=tenant_a.headers(Role.OPERATIONS),
        )
        assert shipped.status_code == 200, shipped.text
        client.cookies.clear()
        [claim] = (await client.get("/v1/members/me/export", headers=cookie)).json()["prize_claims"]
        assert (claim["carrier"], claim["tracking_number"]) == ("SF Express", "SF1234567890")
        assert claim["shipped_at"] is not None
        client.cookies.clear()
        late = await client.post(path, json=address, headers=cookie)
        assert late.status_code == 409
        assert late.json()["type"].endswith("prize-not-claimable")
        client.cookies.clear()
        for wrong in (
            {"address": ""},
            {"phone": "hello world"},
            {"postal_code": "!!"},
            {"recipient": "a\nb"},
        ):
            client.cookies.clear()
            bad = await client.post(path, json={**address, **wrong}, headers=cookie)
            assert bad.status_code == 422, (wrong, bad.text)
            assert bad.json()["errors"][0]["field"] == next(iter(wrong)), wrong


class TestLegalCap:
    async def test_a_prize_above_the_legal_cap_is_saved_with_a_warning(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """50,000 CNY by default: a 60,000 CNY car is allowed but named in `warnings`; a mug is not."""
        prizes = [
            {"name": "Car", "kind": "physical", "weight": 1, "stock": 1, "cost_cents": 6_000_000},
            {"name": "Mug", "kind": "physical", "weight": 1, "stock": 9, "cost_cents": 3_000},
        ]
        campaign = await create(client, tenant_a, draw_campaign(prizes=prizes))
        [warning] = campaign["warnings"]
        assert "'Car'" in warning and "60,000.00" in warning and "50,000.00" in warning
        fetched = await client.get(f"/v1/campaigns/{campaign['id']}", headers=tenant_a.headers())
        assert len(fetched.json()["warnings"]) == 1
        modest = await create(client, tenant_a, draw_campaign(prizes=prizes[1:]))
        assert modest["warnings"] == []
