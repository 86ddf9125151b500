"""Member details an audit found untested: two KPIs, the richer timeline, resumed imports, scan-only tiers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from campaigns import coupons
from campaigns.members import imports
from service.db import fetch_one as real_fetch_one
from service.models import Role
from tests.api.test_errors import assert_problem
from tests.campaigns.test_campaign_api import step
from tests.campaigns.test_coupons import (
    amount_template,
    coupon_campaign,
    coupon_from_scan,
    make_template,
    redeem,
)
from tests.campaigns.test_scan_rewards import draw_campaign, launch, scan
from tests.deploy.test_partitions import add_month, month_start
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.members.test_imports import post_csv
from tests.members.test_membership import refresh

if TYPE_CHECKING:
    import psycopg
    from litestar.testing import AsyncTestClient

    from service.settings import Settings
    from tests.conftest import Tenant


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


def member_of(answer: Any) -> uuid.UUID:
    return uuid.UUID(answer["member"]["id"])


async def backdate_scan(db: psycopg.AsyncConnection[Any], answer: Any, at: dt.datetime) -> None:
    """Move a scan to `at`, into its month's partition (created if the scan log has none for it yet)."""
    now = dt.datetime.now(dt.UTC)
    months_ago = (now.year - at.year) * 12 + now.month - at.month
    if months_ago > 0:
        await add_month(db, "scans", -months_ago)
    cur = await db.execute("UPDATE scans SET scanned_at = %s WHERE id = %s", (at, answer["scan_id"]))
    assert cur.rowcount == 1


async def kpis(client: AsyncTestClient[Any], tenant: Tenant, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/kpis", params=params, headers=tenant.headers(Role.MARKETER))
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()
    return figures


async def profile(client: AsyncTestClient[Any], tenant: Tenant, member_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}", headers=tenant.headers(Role.CUSTOMER_SERVICE))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


class TestKpiRates:
    async def test_dormant_reactivation_counts_dormant_members_who_came_back_in_the_range(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Over the default 30 days, with active_days 90: of the two members whose last scan before the
        range was older than 90 days before it, one scanned again: 1 / 2. A member last seen 50-80 days
        ago is not dormant, one who scans only in the range is new: neither counts."""
        long_ago = dt.datetime.combine(
            await month_start(db, -7) + dt.timedelta(days=14), dt.time(12), tzinfo=dt.UTC
        )
        recently = dt.datetime.combine(
            await month_start(db, -2) + dt.timedelta(days=14), dt.time(12), tzinfo=dt.UTC
        )
        back = await scan(client, issued.urls[0], "device-dormant-back")
        await backdate_scan(db, back, long_ago)
        away = await scan(client, issued.urls[1], "device-dormant-away")
        await backdate_scan(db, away, long_ago)
        await backdate_scan(db, await scan(client, issued.urls[2], "device-active-before"), recently)
        await refresh(db, full=True)
        assert (await profile(client, tenant_a, member_of(back)))["lifecycle"] == "dormant"
        assert (await profile(client, tenant_a, member_of(away)))["lifecycle"] == "dormant"

        again = await scan(client, issued.urls[3], "device-dormant-back")
        assert again["member"]["id"] == back["member"]["id"]
        await scan(client, issued.urls[4], "device-active-before")
        await scan(client, issued.urls[5], "device-only-now")
        figures = await kpis(client, tenant_a)
        assert figures["scanning_members"] == 3
        assert figures["dormant_reactivation_rate"] == 0.5
        await refresh(db)
        assert (await profile(client, tenant_a, member_of(back)))["lifecycle"] == "active"
        # A range that ends before the comeback: both dormant, neither back yet.
        before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
        assert (await kpis(client, tenant_a, to=before))["dormant_reactivation_rate"] == 0.0

    async def test_coupon_redemption_rate_is_used_over_issued_among_coupons_issued_in_the_range(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Four coupons, two redeemed at the till; one of the redeemed was issued 40 days ago, outside the
        default 30 days: 1 used of 3 issued (0.3333). Over 60 days: 2 of 4."""
        template = await make_template(client, tenant_a, amount_template())
        await launch(client, tenant_a, coupon_campaign(template["id"]))
        codes = [await coupon_from_scan(client, url) for url in issued.urls[:4]]
        for n, code in ((0, codes[0]), (3, codes[3])):
            redeemed = await redeem(client, tenant_a, code, f"order-{n}")
            assert redeemed.status_code == 200, redeemed.text
        cur = await db.execute(
            "UPDATE coupons SET issued_at = issued_at - interval '40 days' WHERE code_hash = %s",
            (coupons.code_hash(coupons.normalize(codes[3]) or ""),),
        )
        assert cur.rowcount == 1
        assert (await kpis(client, tenant_a))["coupon_redemption_rate"] == round(1 / 3, 4) == 0.3333
        sixty_days = (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).isoformat()
        assert (await kpis(client, tenant_a, **{"from": sixty_days}))["coupon_redemption_rate"] == 0.5


class TestTimeline:
    async def test_the_timeline_shows_coupons_draws_and_tier_changes(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """A scan that won a coupon (then redeemed), one that won a draw, and the tier they earned."""
        marketer = tenant_a.headers(Role.MARKETER)
        template = await make_template(client, tenant_a, amount_template())
        coupon_campaign_id = await launch(client, tenant_a, coupon_campaign(template["id"]))
        first = await scan(client, issued.urls[0], "device-timeline-rich")
        member_id = member_of(first)
        [won_coupon] = first["reward"]["outcomes"]
        assert (
            await redeem(client, tenant_a, won_coupon["coupon"]["code"], "order-timeline")
        ).status_code == 200
        assert (await step(client, tenant_a, coupon_campaign_id, "end")).status_code == 200
        draw_campaign_id = await launch(client, tenant_a, draw_campaign())
        second = await scan(client, issued.urls[1], "device-timeline-rich")
        assert second["member"]["id"] == str(member_id)
        ladder = {"tiers": [{"name": "Base"}, {"name": "Regular", "min_scans": 2}]}
        assert (await client.put("/v1/member-tiers", json=ladder, headers=marketer)).status_code == 200
        await refresh(db, full=True)

        response = await client.get(
            f"/v1/members/{member_id}/timeline", headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
        )
        assert response.status_code == 200, response.text
        entries = response.json()
        assert {e["kind"] for e in entries} >= {"scan", "coupon", "draw", "tier"}
        assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
        [coupon] = [e for e in entries if e["kind"] == "coupon"]
        assert (coupon["detail"]["campaign_id"], coupon["detail"]["uses"]) == (coupon_campaign_id, 1)
        [draw] = [e for e in entries if e["kind"] == "draw"]
        assert (draw["ref"], draw["detail"]["campaign_id"]) == (second["scan_id"], draw_campaign_id)
        assert draw["detail"]["result"] == "won"
        [tier] = [e for e in entries if e["kind"] == "tier"]
        assert (tier["detail"]["from_rank"], tier["detail"]["to_rank"]) == (0, 1)
        assert entries[0] == tier  # the newest: written by the refresh, after both scans
        # Staff without personal-data rights see the same entries (they hold nothing personal).
        as_marketer = await client.get(f"/v1/members/{member_id}/timeline", headers=marketer)
        assert [e["kind"] for e in as_marketer.json()] == [e["kind"] for e in entries]


# Nine rows, three chunks of three: a bad phone in the first chunk, a repeated phone in the second.
RESUMED_LIST = b"""phone,name,points
13800000001,A,100
13800000002,B,200
12345,C,5
13800000004,D,400
13800000005,E,500
13800000001,A again,999
13800000007,G,700
13800000008,H,0
13800000009,I,900
"""


class TestImportResume:
    async def test_an_import_stopped_in_its_second_chunk_resumes_without_doing_anything_twice(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The second chunk fails after crediting its balances: the chunk leaves nothing behind, the
        first stays done. Run again, the import skips the first chunk and finishes: each row once, each
        opening balance once, the same totals as an import that never stopped."""
        monkeypatch.setattr(imports, "CHUNK_ROWS", 3)
        chunk_credits = 0

        async def failing_second_credit(*args: Any, **kwargs: Any) -> Any:
            nonlocal chunk_credits
            found = await real_fetch_one(*args, **kwargs)
            if args[1] is imports.QUERIES["credit_opening_balances"]:
                chunk_credits += 1
                if chunk_credits == 2:  # the second chunk
                    raise RuntimeError("the connection dropped")
            return found

        monkeypatch.setattr(imports, "fetch_one", failing_second_credit)
        stopped = await post_csv(client, tenant_a, RESUMED_LIST)
        assert_problem(stopped, 500, "internal-error")
        assert chunk_credits == 2
        cur = await db.execute(
            "SELECT (SELECT count(*) FROM members), (SELECT coalesce(sum(amount), 0) FROM points_ledger),"
            " (SELECT array_agg(row_number ORDER BY row_number) FROM member_import_rows),"
            " (SELECT count(*) FROM member_opening_balances)"
        )
        assert await cur.fetchone() == (2, 300, [1, 2, 3], 2)
        cur = await db.execute("SELECT id, status, rows_total, created, points_credited FROM member_imports")
        [(import_id, *progress)] = await cur.fetchall()
        assert progress == ["running", 3, 2, 300]

        monkeypatch.setattr(imports, "fetch_one", real_fetch_one)
        resumed = await post_csv(client, tenant_a, RESUMED_LIST)
        assert resumed.status_code == 200, resumed.text
        report = resumed.json()
        assert report["id"] == str(import_id)
        assert (report["status"], report["rows"], report["skipped"]) == ("done", 9, 3)
        assert (report["created"], report["duplicates"], report["rejected"]) == (5, 1, 0)
        assert report["points_credited"] == 400 + 500 + 700 + 900
        record = await client.get(f"/v1/member-imports/{import_id}", headers=tenant_a.headers())
        assert {k: record.json()[k] for k in ("rows_total", "created", "duplicates", "rejected")} == {
            "rows_total": 9,
            "created": 7,
            "duplicates": 1,
            "rejected": 1,
        }
        assert record.json()["points_credited"] == 100 + 200 + 400 + 500 + 700 + 900
        cur = await db.execute(
            "SELECT (SELECT count(*) FROM members), (SELECT sum(amount) FROM points_ledger),"
            " (SELECT count(*) FROM points_ledger),"
            " (SELECT array_agg(row_number ORDER BY row_number) FROM member_import_rows),"
            " (SELECT count(*) FROM member_opening_balances)"
        )
        assert await cur.fetchone() == (7, 2800, 6, list(range(1, 10)), 6)
        found = await client.post(
            "/v1/members:search",
            json={"phone": "13800000001"},
            headers=tenant_a.headers(Role.CUSTOMER_SERVICE),
        )
        assert [(m["name"], m["points_balance"]) for m in found.json()] == [("A", 100)]

        again = (await post_csv(client, tenant_a, RESUMED_LIST)).json()
        assert (again["skipped"], again["created"], again["points_credited"]) == (9, 0, 0)


class TestScanTiers:
    async def test_a_tier_by_scans_alone_counts_the_scans_inside_its_window_only(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """'Regular' asks 3 scans in a 30-day window and no points. A scan a minute inside the window
        counts, one a minute outside does not; a third scan in the window then earns the tier."""
        marketer, admin = tenant_a.headers(Role.MARKETER), tenant_a.headers(Role.BRAND_ADMIN)
        ladder = {"tiers": [{"name": "Base"}, {"name": "Regular", "min_scans": 3}]}
        assert (await client.put("/v1/member-tiers", json=ladder, headers=marketer)).status_code == 200
        saved = await client.put("/v1/member-settings", json={"tier_window_days": 30}, headers=admin)
        assert saved.status_code == 200, saved.text
        urls = iter(issued.urls)
        answers: dict[str, list[Any]] = {}
        for who in ("all-recent", "edge-inside", "edge-outside"):
            answers[who] = [await scan(client, next(urls), f"device-tier-{who}") for _ in range(3)]
        now = dt.datetime.now(dt.UTC)
        window_start = now - dt.timedelta(days=30)
        await backdate_scan(db, answers["edge-inside"][0], window_start + dt.timedelta(minutes=1))
        await backdate_scan(db, answers["edge-outside"][0], window_start - dt.timedelta(minutes=1))
        await refresh(db, now=now, full=True)

        members = {who: member_of(found[0]) for who, found in answers.items()}
        cur = await db.execute("SELECT member_id, scans, scans_in_window FROM member_stats")
        stats = {member: (scans, in_window) for member, scans, in_window in await cur.fetchall()}
        assert [stats[members[who]] for who in answers] == [(3, 3), (3, 3), (3, 2)]
        tiers = {}
        for who, member_id in members.items():
            view = await profile(client, tenant_a, member_id)
            assert view["points_earned"] == 0
            tiers[who] = view["tier"]["name"]
        assert tiers == {"all-recent": "Regular", "edge-inside": "Regular", "edge-outside": "Base"}

        await scan(client, next(urls), "device-tier-edge-outside")
        await refresh(db)
        assert (await profile(client, tenant_a, members["edge-outside"]))["tier"]["name"] == "Regular"
