"""The membership programme: statistics refresh, lifecycle, tiers, rule tags, segments, KPIs, privacy."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from campaigns import draws, ledger
from campaigns.members import stats
from service.db import fetch_all
from service.models import Role
from service.routes.scans import MEMBER_COOKIE
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.campaigns.test_campaign_api import step
from tests.campaigns.test_scan_rewards import draw_campaign, launch, points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.members.test_member_admin import enrolled_member
from tests.scans.test_members_api import forget_resend_cooldown

NOW = dt.datetime.now(dt.UTC)


async def refresh(
    db: psycopg.AsyncConnection[Any], *, now: dt.datetime | None = None, full: bool = False
) -> stats.RefreshReport:
    async with db.transaction():
        return await stats.refresh(db, now=now or dt.datetime.now(dt.UTC), full=full)


async def scan(client: AsyncTestClient[Any], url: str, device_id: str) -> Any:
    response = await client.post("/v1/scans", json={"code": url, "device_id": device_id})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=30)


class TestRefresh:
    async def test_the_refresh_is_planned_for_its_members_every_time(
        self, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Prepared (psycopg does so at a statement's 5th run on a connection), the refresh's statements
        could settle on a generic plan that tests `id = ANY($1)` element by element for every row: 51 s
        instead of 2.3 s for 60,000 members. Its statements are never prepared."""
        now = dt.datetime.now(dt.UTC)
        for minute in range(7):
            await refresh(db, now=now + dt.timedelta(minutes=minute))
        cur = await db.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%member%'")
        assert await cur.fetchone() == (0,)
        assert db.prepare_threshold == 5  # the connection's own setting is back

    async def test_tables_grown_past_their_statistics_are_analyzed_first(
        self, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """A fresh deployment's first promotion outgrows the tables' statistics within a minute; planned
        on them ("members: 3 rows"), one refresh statement ran for minutes. The refresh analyzes a table
        it reads once it has doubled since its last analysis, and leaves it alone after."""
        await db.execute("ANALYZE members")
        cur = await db.execute("SELECT count(*) FROM members")
        before = (await cur.fetchone() or (0,))[0]
        await db.execute(
            "INSERT INTO members (id, brand_id) SELECT gen_random_uuid(), %s FROM generate_series(1, %s)",
            (tenant_a.brand_id, before + 200),
        )
        await db.execute("SELECT pg_stat_force_next_flush()")
        await db.execute("SELECT 1")  # the insert's counts reach the statistics views
        async with db.transaction():
            assert "members" in await stats.analyze_outgrown(db, min_rows=100)
        cur = await db.execute("SELECT reltuples FROM pg_class WHERE relname = 'members'")
        assert (await cur.fetchone() or (0,))[0] >= 2 * before + 200
        async with db.transaction():
            assert "members" not in await stats.analyze_outgrown(db, min_rows=100)

    async def test_scans_are_joined_by_member_in_any_plan(
        self, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """The refresh of a promotion's members once ran for minutes: with row estimates from when the
        tables were small, the planner hashed every scan of the brand against every target member (the
        brand was the only condition joining them). Now wherever a plan compares the scans' brand it
        compares their member too: the scans meet only the family of each target, which carries both."""
        await db.execute("SET enable_mergejoin = off")
        await db.execute("SET enable_nestloop = off")
        try:
            cur = await db.execute(
                "EXPLAIN " + stats.QUERIES["refresh_stats"],
                {"member_ids": "{" + str(uuid.uuid4()) + "}", "now": dt.datetime.now(dt.UTC)},
            )
            plan = [row[0] for row in await cur.fetchall()]
        finally:
            await db.execute("RESET enable_mergejoin")
            await db.execute("RESET enable_nestloop")
        scans_brand, scans_member = re.compile(r"\bs(_\d+)?\.brand_id"), re.compile(r"\bs(_\d+)?\.member_id")
        brand_conditions = [line.strip() for line in plan if scans_brand.search(line)]
        assert brand_conditions, "\n".join(plan)
        assert all(scans_member.search(line) for line in brand_conditions), "\n".join(plan)

    async def test_a_transaction_open_across_a_refresh_is_seen_by_the_next(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Points written by a transaction that began before a refresh and committed after it (a long
        import) carry a time the next refresh would already have passed: it looks back to that
        transaction's start instead, however long it stayed open."""
        member_id = uuid.UUID((await scan(client, issued.urls[0], "device-open-1"))["member"]["id"])
        # The daily full refresh dated as the last refresh below will be: run in the last 20 minutes of
        # a UTC day, that refresh would otherwise be the next day's full one.
        await refresh(db, full=True, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20, seconds=1))
        async with await psycopg.AsyncConnection.connect(settings.database_url or "") as slow:
            began = dt.datetime.now(dt.UTC)
            await slow.execute("SELECT 1")  # the transaction is open from here
            await ledger.earn(
                slow,
                ledger.Member(tenant_a.brand_id, member_id),
                70,
                reason="import",
                source="test",
                now=began,
            )
            # A refresh ten minutes later (by its clock) while that transaction is still open...
            await refresh(db, now=began + dt.timedelta(minutes=10))
            await slow.commit()
        # ...and the next one, later still, finds the points it could not see.
        report = await refresh(db, now=began + dt.timedelta(minutes=20))
        assert report.ran and not report.full
        view = (await client.get(f"/v1/members/{member_id}", headers=tenant_a.headers(Role.MARKETER))).json()
        assert view["points_earned"] == 70

    async def test_stats_lifecycle_and_tiers_follow_scans_and_points(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = uuid.UUID((await scan(client, issued.urls[0], "device-stats-1"))["member"]["id"])
        await scan(client, issued.urls[1], "device-stats-1")
        await scan(client, issued.urls[1], "device-stats-1")  # a repeat of the same code
        marketer = tenant_a.headers(Role.MARKETER)
        ladder = {
            "tiers": [
                {"name": "普通"},
                {"name": "银卡", "min_points_earned": 100, "points_multiplier_pct": 120},
                {"name": "金卡", "min_points_earned": 500, "min_scans": 3, "draw_weight_bonus_pct": 20},
            ]
        }
        saved = await client.put("/v1/member-tiers", json=ladder, headers=marketer)
        assert saved.status_code == 200, saved.text
        assert [t["rank"] for t in saved.json()["tiers"]] == [0, 1, 2]
        first = await refresh(db, full=True)
        assert first.ran and first.full and first.members >= 1
        view = (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()
        assert (view["scans"], view["lifecycle"], view["tier"]) == (3, "new", {"rank": 0, "name": "普通"})
        member = ledger.Member(tenant_a.brand_id, member_id)
        await ledger.earn(db, member, 600, reason="scan", source="test", now=NOW)
        incremental = await refresh(db)
        assert incremental.ran and not incremental.full and incremental.members == 1  # only the touched one
        view = (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()
        assert (view["tier"]["name"], view["points_earned"], view["points_balance"]) == ("金卡", 600, 600)
        # Spending does not lower lifetime points; an unreachable ladder downgrades only at year end.
        await client.put(
            "/v1/member-tiers",
            json={"tiers": [{"name": "普通"}, {"name": "银卡", "min_points_earned": 10_000}]},
            headers=marketer,
        )
        await refresh(db, full=True)
        assert (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()["tier"]["rank"] == 2
        next_year = dt.datetime(NOW.year + 1, 1, 1, 0, 5, tzinfo=dt.UTC)
        await refresh(db, now=next_year, full=True)
        later = (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()
        assert later["tier"]["rank"] == 0
        cur = await db.execute(
            "SELECT from_rank, to_rank FROM member_tier_changes WHERE member_id = %s ORDER BY id",
            (member_id,),
        )
        assert await cur.fetchall() == [(0, 2), (2, 0)]
        # Lifecycle ages without scans: new, then active, dormant and churned by the brand's thresholds.
        for days, stage in ((40, "active"), (200, "dormant"), (400, "churned")):
            await refresh(db, now=NOW + dt.timedelta(days=days), full=True)
            assert (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()[
                "lifecycle"
            ] == stage

    async def test_bad_ladders_and_settings_are_refused(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        marketer = tenant_a.headers(Role.MARKETER)
        for ladder in (
            {"tiers": [{"name": "a", "min_points_earned": 5}]},
            {
                "tiers": [
                    {"name": "a"},
                    {"name": "b", "min_points_earned": 100},
                    {"name": "c", "min_points_earned": 50},
                ]
            },
            {"tiers": [{"name": "a"}, {"name": "a", "min_points_earned": 100}]},
            {"tiers": [{"name": "a"}, {"name": "b"}]},
            {"tiers": []},
            {"tiers": [{"name": "a", "rank": 1}]},  # the place in the list is the rank
        ):
            refused = await client.put("/v1/member-tiers", json=ladder, headers=marketer)
            assert refused.status_code in {400, 422}, ladder
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        bad = await client.put(
            "/v1/member-settings", json={"active_days": 400, "churn_days": 365}, headers=admin
        )
        assert_problem(bad, 422, "validation-error")
        assert (
            await client.put("/v1/member-settings", json={"new_days": 7}, headers=marketer)
        ).status_code == 403
        good = await client.put("/v1/member-settings", json={"adjustment_approval_points": 50}, headers=admin)
        assert good.json()["adjustment_approval_points"] == 50
        assert (await client.get("/v1/member-settings", headers=marketer)).json()[
            "adjustment_approval_points"
        ] == 50

    async def test_the_ladder_read_can_be_written_back(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """GET /v1/member-tiers answers the shape PUT takes (`{"tiers": [...]}`, ranks included): a ladder
        read, changed and sent back, is saved; PUT answers the ladder as GET does."""
        marketer = tenant_a.headers(Role.MARKETER)
        assert (await client.get("/v1/member-tiers", headers=marketer)).json() == {"tiers": []}
        ladder = {"tiers": [{"name": "basic"}, {"name": "silver", "min_points_earned": 100}]}
        saved = await client.put("/v1/member-tiers", json=ladder, headers=marketer)
        assert saved.status_code == 200, saved.text
        read = await client.get("/v1/member-tiers", headers=marketer)
        assert read.json() == saved.json()
        assert [(t["rank"], t["name"]) for t in read.json()["tiers"]] == [(0, "basic"), (1, "silver")]
        again = await client.put("/v1/member-tiers", json=read.json(), headers=marketer)
        assert again.status_code == 200, again.text
        assert again.json() == read.json()
        changed = read.json()
        changed["tiers"][1]["points_multiplier_pct"] = 150
        rewritten = await client.put("/v1/member-tiers", json=changed, headers=marketer)
        assert rewritten.status_code == 200, rewritten.text
        assert (await client.get("/v1/member-tiers", headers=marketer)).json() == changed

    async def test_rule_tags_follow_behaviour(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """'Scanned >= 3 items of this product in 90 days': given while it holds, taken after."""
        marketer = tenant_a.headers(Role.MARKETER)
        rule = {"min_scans": 3, "within_days": 90, "product_ids": [str(issued.product.id)]}
        created = await client.post("/v1/tags", json={"name": "loyal lager", "rule": rule}, headers=marketer)
        assert created.status_code == 201, created.text
        regular = uuid.UUID((await scan(client, issued.urls[0], "device-rule-1"))["member"]["id"])
        for url in issued.urls[1:3]:
            await scan(client, url, "device-rule-1")
        client.cookies.clear()
        casual = uuid.UUID((await scan(client, issued.urls[5], "device-rule-2"))["member"]["id"])
        await refresh(db)
        cur = await db.execute("SELECT member_id FROM member_tags")
        assert await cur.fetchall() == [(regular,)]
        assert casual != regular
        await refresh(db, now=NOW + dt.timedelta(days=120), full=True)
        cur = await db.execute("SELECT count(*) FROM member_tags")
        assert await cur.fetchone() == (0,)

    async def test_new_member_rules_reach_members_who_did_nothing_since_at_the_next_refresh(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """A rule tag or a tier ladder made after a member's last scan applies to it within the minute,
        not at the nightly full refresh; so do deleting a tag and new lifecycle thresholds, while a
        setting no stage depends on asks for nothing."""
        member_id = uuid.UUID((await scan(client, issued.urls[0], "device-recompute"))["member"]["id"])
        # Refreshes two hours ahead: the scan is then older than any look-back of an incremental refresh.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        assert (await refresh(db, now=later, full=True)).full
        assert (await refresh(db, now=later + dt.timedelta(seconds=10))).members == 0
        marketer = tenant_a.headers(Role.MARKETER)
        rule = {"min_scans": 1, "within_days": 90}
        created = await client.post("/v1/tags", json={"name": "scanner", "rule": rule}, headers=marketer)
        assert created.status_code == 201, created.text
        ladder = {"tiers": [{"name": "普通"}, {"name": "扫码达人", "min_scans": 1}]}
        assert (await client.put("/v1/member-tiers", json=ladder, headers=marketer)).status_code == 200

        report = await refresh(db, now=later + dt.timedelta(seconds=20))
        assert not report.full and report.members == 1
        cur = await db.execute("SELECT member_id FROM member_tags")
        assert await cur.fetchall() == [(member_id,)]
        view = (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()
        assert view["tier"] == {"rank": 1, "name": "扫码达人"}
        # The requests are used up: the refresh after recomputes nobody again.
        assert (await refresh(db, now=later + dt.timedelta(seconds=30))).members == 0

        async def requested() -> list[str]:
            cur = await db.execute("SELECT reason FROM member_recompute_requests ORDER BY id")
            return [reason for (reason,) in await cur.fetchall()]

        admin = tenant_a.headers()
        approval = await client.put(
            "/v1/member-settings", json={"adjustment_approval_points": 50}, headers=admin
        )
        assert approval.status_code == 200, approval.text
        assert await requested() == []
        staging = await client.put("/v1/member-settings", json={"active_days": 60}, headers=admin)
        assert staging.status_code == 200, staging.text
        assert (await client.delete("/v1/tags/scanner", headers=marketer)).status_code == 204
        assert await requested() == ["lifecycle thresholds or tier window changed", "tag 'scanner' deleted"]
        assert (await refresh(db, now=later + dt.timedelta(seconds=40))).members == 1
        assert await requested() == []

    async def test_spent_points_make_a_rule_tag_and_a_segment(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """'Spent >= 500 points': redemptions count, earning alone does not."""
        marketer = tenant_a.headers(Role.MARKETER)
        spender = uuid.UUID((await scan(client, issued.urls[0], "device-spend-1"))["member"]["id"])
        client.cookies.clear()
        saver = uuid.UUID((await scan(client, issued.urls[1], "device-spend-2"))["member"]["id"])
        rule = {"name": "big spender", "rule": {"min_points_spent": 500}}
        assert (await client.post("/v1/tags", json=rule, headers=marketer)).status_code == 201
        for member_id in (spender, saver):
            await ledger.earn(
                db, ledger.Member(tenant_a.brand_id, member_id), 800, reason="t", source="t", now=NOW
            )
        async with db.transaction():
            await ledger.spend(
                db, ledger.Member(tenant_a.brand_id, spender), 600, reason="gift", source="t", now=NOW
            )
        await refresh(db)
        cur = await db.execute("SELECT member_id FROM member_tags")
        assert await cur.fetchall() == [(spender,)]
        counted = await client.post("/v1/segments:count", json={"points_spent_min": 500}, headers=marketer)
        assert counted.json()["members"] == 1


class TestSegments:
    async def test_segment_counts_filters_and_a_masked_export(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        enrolled = await enrolled_member(client, db, issued.urls[0], "device-seg-1")
        await scan(client, issued.urls[1], "device-seg-1")
        anonymous = []
        for n in range(3):
            client.cookies.clear()
            anonymous.append(
                (await scan(client, issued.urls[10 + n], f"device-seg-anon-{n}"))["member"]["id"]
            )
        marketer = tenant_a.headers(Role.MARKETER)
        await client.post("/v1/tags", json={"name": "VIP"}, headers=marketer)
        await client.put(f"/v1/members/{anonymous[0]}/tags/VIP", headers=marketer)
        await refresh(db)

        async def count(flt: dict[str, Any]) -> int:
            response = await client.post(
                "/v1/segments:count", json=flt, headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
            )
            assert response.status_code == 200, (flt, response.text)
            return int(response.json()["members"])

        assert await count({}) == 4
        assert await count({"enrolled": True}) == 1
        assert await count({"scans_min": 2}) == 1
        assert await count({"tags_any": ["VIP"]}) == 1
        assert await count({"tags_none": ["VIP"]}) == 3
        assert await count({"tags_all": ["VIP"], "enrolled": False}) == 1
        assert await count({"lifecycle": ["new"], "scanned_within_days": 1}) == 4
        assert await count({"idle_days": 1}) == 0
        assert await count({"products_any": [str(issued.product.id)]}) == 4
        assert await count({"tiers": [0]}) == 4  # the entry tier, before the brand defines a ladder
        for bad, status in (
            ({"tags_any": ["nope"]}, 422),
            ({"regions": ["XX-99"]}, 422),
            ({"scans_min": 5, "scans_max": 1}, 422),
            ({"attributes": {"store": "x"}}, 422),
            ({"products_any": [str(uuid.uuid4())]}, 422),
            ({"tiers": [7]}, 422),  # no such rank: an empty segment would hide the mistake
        ):
            refused = await client.post("/v1/segments:count", json=bad, headers=marketer)
            assert refused.status_code == status, (bad, refused.text)
        unknown_product = {"name": "phantom", "rule": {"min_scans": 1, "product_ids": [str(uuid.uuid4())]}}
        refused = await client.post("/v1/tags", json=unknown_product, headers=marketer)
        assert assert_problem(refused, 422, "validation-error")["errors"][0]["field"] == "rule.product_ids"
        unknown_field = await client.post(
            "/v1/segments:count", json={"favourite_colour": "red"}, headers=marketer
        )
        assert unknown_field.status_code in {400, 422}
        saved = await client.post(
            "/v1/segments", json={"name": "anonymous", "filter": {"enrolled": False}}, headers=marketer
        )
        assert saved.status_code == 201, saved.text
        segment_id = saved.json()["id"]
        assert (await client.get(f"/v1/segments/{segment_id}/count", headers=marketer)).json()["members"] == 3
        exported = await client.get(
            f"/v1/segments/{segment_id}/members.csv", params={"limit": 2}, headers=marketer
        )
        assert exported.status_code == 200, exported.text
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][0] == "member_id" and len(rows) == 3
        assert 'rel="next"' in exported.headers["link"]
        whole = await client.get(
            f"/v1/segments/{segment_id}/members.csv", params={"limit": 3}, headers=marketer
        )
        assert len(whole.text.splitlines()) == 4 and "link" not in whole.headers  # no empty file after
        everyone = await client.post("/v1/segments", json={"name": "all", "filter": {}}, headers=marketer)
        # A name is the brand's once: taking it again, or renaming onto it, is a conflict naming the field.
        for taken in (
            await client.post("/v1/tags", json={"name": "VIP"}, headers=marketer),
            await client.post("/v1/segments", json={"name": "all", "filter": {}}, headers=marketer),
            await client.put(
                f"/v1/segments/{segment_id}", json={"name": "all", "filter": {}}, headers=marketer
            ),
        ):
            assert assert_problem(taken, 409, "conflict")["errors"] == [
                {"field": "name", "message": taken.json()["detail"]}
            ]
        unchanged = await client.get(f"/v1/segments/{segment_id}", headers=marketer)
        assert unchanged.json()["name"] == "anonymous"
        full = await client.get(f"/v1/segments/{everyone.json()['id']}/members.csv", headers=marketer)
        phones = [r[1] for r in csv.reader(io.StringIO(full.text))][1:]
        assert "*******8000" in phones and not any("138" in p for p in phones)
        cs_export = await client.get(
            f"/v1/segments/{segment_id}/members.csv", headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
        )
        assert cs_export.status_code == 403
        assert enrolled not in anonymous

    async def test_attribute_values_no_member_can_hold_are_refused(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A filter's attribute value must be one the attribute can hold, by the rules of a member edit: a
        value outside a choice attribute's choices, or of the wrong type, is a 422 naming the attribute
        (when counting and when saving), never an empty segment."""
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        for definition in (
            {"name": "store", "type": "choice", "choices": ["West Lake", "Binjiang"]},
            {"name": "visits", "type": "number"},
            {"name": "vip", "type": "boolean"},
            {"name": "joined", "type": "date"},
            {"name": "note", "type": "text"},
        ):
            defined = await client.post("/v1/member-attributes", json=definition, headers=admin)
            assert defined.status_code == 200, defined.text
        marketer = tenant_a.headers(Role.MARKETER)
        fine = {"store": "West Lake", "visits": 3, "vip": True, "joined": "2024-02-29", "note": "hi"}
        counted = await client.post("/v1/segments:count", json={"attributes": fine}, headers=marketer)
        assert counted.status_code == 200 and counted.json()["members"] == 0, counted.text
        saved = await client.post(
            "/v1/segments", json={"name": "fine", "filter": {"attributes": fine}}, headers=marketer
        )
        assert saved.status_code == 201, saved.text
        for attributes, field, message in (
            ({"store": "Nowhere"}, "filter.attributes.store", "not a valid choice"),
            ({"store": 5}, "filter.attributes.store", "not a valid choice"),
            ({"visits": "three"}, "filter.attributes.visits", "not a valid number"),
            ({"visits": True}, "filter.attributes.visits", "not a valid number"),
            ({"vip": "yes"}, "filter.attributes.vip", "not a valid boolean"),
            ({"joined": "2024-02-30"}, "filter.attributes.joined", "not a valid date"),
            ({"note": "x" * 201}, "filter.attributes.note", "not a valid text"),
            ({"shoe_size": 42}, "filter.attributes.shoe_size", "no such attribute; define it first"),
        ):
            for refused in (
                await client.post("/v1/segments:count", json={"attributes": attributes}, headers=marketer),
                await client.post(
                    "/v1/segments",
                    json={"name": f"bad {field}", "filter": {"attributes": attributes}},
                    headers=marketer,
                ),
                await client.put(
                    f"/v1/segments/{saved.json()['id']}",
                    json={"name": "fine", "filter": {"attributes": attributes}},
                    headers=marketer,
                ),
            ):
                problem = assert_problem(refused, 422, "validation-error")
                assert problem["errors"] == [{"field": field, "message": message}], (attributes, problem)
        kept = await client.get(f"/v1/segments/{saved.json()['id']}", headers=marketer)
        assert kept.json()["filter"] == {"attributes": fine}  # the refused edits changed nothing


class TestKpis:
    async def test_kpis_over_a_range(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        enrolled = await enrolled_member(client, db, issued.urls[0], "device-kpi-1")
        await scan(client, issued.urls[1], "device-kpi-1")
        client.cookies.clear()
        await scan(client, issued.urls[2], "device-kpi-2")
        await ledger.earn(
            db, ledger.Member(tenant_a.brand_id, uuid.UUID(enrolled)), 70, reason="t", source="t", now=NOW
        )
        response = await client.get("/v1/kpis", headers=tenant_a.headers(Role.FINANCE))
        assert response.status_code == 200, response.text
        figures = response.json()
        assert (figures["members"], figures["new_members"], figures["enrolled_members"]) == (2, 2, 1)
        assert (figures["monthly_active_members"], figures["scanning_members"]) == (2, 2)
        assert figures["repeat_purchase_rate"] == 0.5  # one of two purchasers scanned two codes first
        assert figures["scan_to_member_conversion"] == 0.5
        assert figures["average_scans_per_member"] == 1.5
        assert figures["points_liability"] == 70
        assert figures["coupon_redemption_rate"] is None  # no coupons issued: no data, not zero
        past = (
            await client.get(
                "/v1/kpis",
                params={"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"},
                headers=tenant_a.headers(Role.MARKETER),
            )
        ).json()
        assert (past["members"], past["scanning_members"]) == (0, 0)
        backwards = await client.get(
            "/v1/kpis",
            params={"from": "2021-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"},
            headers=tenant_a.headers(),
        )
        assert_problem(backwards, 422, "validation-error")
        too_long = await client.get(
            "/v1/kpis",
            params={"from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"},
            headers=tenant_a.headers(),
        )
        assert_problem(too_long, 422, "validation-error")
        naive = await client.get(
            "/v1/kpis", params={"from": "2024-01-01T00:00:00"}, headers=tenant_a.headers(Role.FINANCE)
        )
        assert_problem(naive, 422, "validation-error")
        garbled = await client.get("/v1/kpis", params={"from": "last week"}, headers=tenant_a.headers())
        garbled_problem = assert_problem(garbled, 422, "validation-error")
        assert [error["field"] for error in garbled_problem["errors"]] == ["from"]
        assert (await client.get("/v1/kpis", headers=tenant_a.headers(Role.POINT_OF_SALE))).status_code == 403
        # The same figures for one segment: the enrolled members only.
        saved = await client.post(
            "/v1/segments",
            json={"name": "enrolled", "filter": {"enrolled": True}},
            headers=tenant_a.headers(),
        )
        segment = (
            await client.get(
                "/v1/kpis", params={"segment_id": saved.json()["id"]}, headers=tenant_a.headers(Role.MARKETER)
            )
        ).json()
        assert (segment["members"], segment["scanning_members"], segment["points_liability"]) == (1, 1, 70)
        assert (segment["repeat_purchase_rate"], segment["scan_to_member_conversion"]) == (1.0, 1.0)
        unknown = await client.get(
            "/v1/kpis", params={"segment_id": str(uuid.uuid4())}, headers=tenant_a.headers()
        )
        assert_problem(unknown, 404, "not-found")


class TestPrivacy:
    async def test_export_then_erasure_leaves_no_phone_in_clear_anywhere(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        member_id = await enrolled_member(client, db, issued.urls[0], "device-pipl-1")
        token = client.cookies[MEMBER_COOKIE]
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        await client.patch(
            f"/v1/members/{member_id}", json={"name": "李四", "birthday": "1985-02-03"}, headers=cs
        )
        await client.post(
            f"/v1/members/{member_id}/notes", json={"body": "prefers calls after 18:00"}, headers=cs
        )
        await ledger.earn(
            db, ledger.Member(tenant_a.brand_id, uuid.UUID(member_id)), 30, reason="t", source="t", now=NOW
        )
        exported = await client.get("/v1/members/me/export")
        assert exported.status_code == 200, exported.text
        data = exported.json()
        assert data["profile"]["phone"] == "+8613800138000" and data["profile"]["name"] == "李四"
        assert [s["device_id"] for s in data["scans"]] == ["device-pipl-1"]
        assert [d["device_id"] for d in data["devices"]] == ["device-pipl-1"]
        assert sum(e["amount"] for e in data["points_ledger"]) == 30
        assert [n["body"] for n in data["notes"]] == ["prefers calls after 18:00"]
        assert (data["coupons"], data["draws"], data["prize_claims"]) == ([], [], [])

        erased = await client.delete("/v1/members/me")
        assert erased.status_code == 204, erased.text
        assert MEMBER_COOKIE not in client.cookies
        view = (await client.get(f"/v1/members/{member_id}", headers=cs)).json()
        assert (view["phone"], view["name"], view["enrolled"]) == (None, None, False)
        assert view["erased_at"] is not None and view["points_balance"] == 30  # the ledger stays consistent
        found = await client.post("/v1/members:search", json={"phone": "13800138000"}, headers=cs)
        assert found.json() == []
        again = await client.request(
            "DELETE", "/v1/members/me", headers={"Cookie": f"{MEMBER_COOKIE}={token}"}
        )
        assert_problem(again, 410, "member-erased")
        # The token outlives the member it named: nothing personal answers to it any more.
        outlived = {"Cookie": f"{MEMBER_COOKIE}={token}"}
        for path in ("/v1/members/me", "/v1/members/me/export", "/v1/members/me/rewards"):
            assert_problem(await client.get(path, headers=outlived), 410, "member-erased")
        changed = await client.patch("/v1/members/me/consents", json={"marketing": True}, headers=outlived)
        assert_problem(changed, 410, "member-erased")
        assert_problem(
            await client.patch(f"/v1/members/{member_id}", json={"name": "x"}, headers=cs),
            410,
            "member-erased",
        )
        # The scan statistics still count the scan, under the now anonymous id.
        await refresh(db)
        cur = await db.execute("SELECT scans FROM member_stats WHERE member_id = %s", (member_id,))
        assert await cur.fetchone() == (1,)

        # A phone enrolled by another member stays sealed too: nowhere in a dump, nowhere in the logs.
        await forget_resend_cooldown(settings)
        client.cookies.clear()
        await enrolled_member(client, db, issued.urls[1], "device-pipl-2")
        # The server's own pg_dump: the one on PATH may be older than an embedded server (and refuse it).
        bindir = await (await db.execute("SELECT setting FROM pg_config WHERE name = 'BINDIR'")).fetchone()
        beside_server = Path(bindir[0]) / "pg_dump" if bindir else None
        pg_dump = str(beside_server) if beside_server and beside_server.is_file() else "pg_dump"
        dumped = (
            await asyncio.to_thread(
                subprocess.run,
                [pg_dump, "--data-only", settings.database_url or ""],
                capture_output=True,
                check=True,
            )
        ).stdout
        for clear in (b"13800138000", "李四".encode(), b"prefers calls"):
            assert clear not in dumped
        logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
        assert "13800138000" not in logged and "138 0013 8000" not in logged


class TestTierRewards:
    async def test_a_tier_campaign_rewards_its_tiers_only_and_pays_the_multiplier(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        marketer = tenant_a.headers(Role.MARKETER)
        ladder = {
            "tiers": [
                {"name": "普通"},
                {"name": "金卡", "min_points_earned": 100, "points_multiplier_pct": 150},
            ]
        }
        assert (await client.put("/v1/member-tiers", json=ladder, headers=marketer)).status_code == 200
        gold = uuid.UUID((await scan(client, issued.urls[0], "device-gold-1"))["member"]["id"])
        client.cookies.clear()
        plain = uuid.UUID((await scan(client, issued.urls[1], "device-plain-1"))["member"]["id"])
        await ledger.earn(db, ledger.Member(tenant_a.brand_id, gold), 100, reason="t", source="t", now=NOW)
        await refresh(db)
        gold_only = points_campaign(
            name="Gold bonus", eligibility={"member_tiers": ["金卡"]}, stackable=True, priority=10
        )
        everyone = points_campaign(
            name="Everyone", points_reward={"points": 10, "cents_per_point": 2}, stackable=True
        )
        gold_id = await launch(client, tenant_a, gold_only)
        everyone_id = await launch(client, tenant_a, everyone)
        client.cookies.clear()
        gold_scan = await scan(client, issued.urls[2], "device-gold-1")
        client.cookies.clear()
        plain_scan = await scan(client, issued.urls[3], "device-plain-1")
        assert gold_scan["member"]["id"] == str(gold) and plain_scan["member"]["id"] == str(plain)
        assert gold_scan["reward"]["points"] == 150 + 15  # both campaigns, each times 1.5
        assert plain_scan["reward"]["points"] == 10
        assert [o["campaign_id"] for o in plain_scan["reward"]["outcomes"] if o["result"] == "awarded"] == [
            everyone_id
        ]
        cur = await db.execute("SELECT id, spent_cents FROM campaigns ORDER BY name")
        assert dict(await cur.fetchall()) == {
            uuid.UUID(everyone_id): 15 * 2 + 10 * 2,
            uuid.UUID(gold_id): 150,
        }


class TestRetention:
    async def test_idle_members_past_the_brands_retention_are_erased_daily(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        idle = await enrolled_member(client, db, issued.urls[0], "device-retention-1")
        await forget_resend_cooldown(settings)
        client.cookies.clear()
        with_points = uuid.UUID((await scan(client, issued.urls[1], "device-retention-2"))["member"]["id"])
        await ledger.earn(
            db, ledger.Member(tenant_a.brand_id, with_points), 5, reason="t", source="t", now=NOW
        )
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        too_short = await client.put(
            "/v1/member-settings", json={"erase_inactive_after_days": 7}, headers=admin
        )
        assert_problem(too_short, 422, "validation-error")
        saved = await client.put("/v1/member-settings", json={"erase_inactive_after_days": 30}, headers=admin)
        assert saved.json()["erase_inactive_after_days"] == 30
        kept = await refresh(db, now=NOW + dt.timedelta(days=20), full=True)
        assert kept.erased == 0
        report = await refresh(db, now=NOW + dt.timedelta(days=40), full=True)
        assert report.erased == 1
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        erased = (await client.get(f"/v1/members/{idle}", headers=cs)).json()
        assert erased["erased_at"] is not None and erased["phone"] is None
        assert (await client.get(f"/v1/members/{with_points}", headers=cs)).json()["erased_at"] is None
        audit = await client.get(
            "/v1/audit", params={"action": "member.retention_erase"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert audit.json()["items"][0]["after"] == {"members": 1}


class TestSegmentCampaigns:
    async def test_a_campaign_for_a_segment_rewards_its_members_only(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        marketer = tenant_a.headers(Role.MARKETER)
        vip = uuid.UUID((await scan(client, issued.urls[0], "device-seg-vip"))["member"]["id"])
        client.cookies.clear()
        other = uuid.UUID((await scan(client, issued.urls[1], "device-seg-other"))["member"]["id"])
        await client.post("/v1/tags", json={"name": "VIP"}, headers=marketer)
        await client.put(f"/v1/members/{vip}/tags/VIP", headers=marketer)
        segment = await client.post(
            "/v1/segments", json={"name": "VIPs", "filter": {"tags_any": ["VIP"]}}, headers=marketer
        )
        unknown = await client.post(
            "/v1/campaigns",
            json=points_campaign(eligibility={"segment_ids": [str(uuid.uuid4())]}),
            headers=marketer,
        )
        assert (
            assert_problem(unknown, 422, "validation-error")["errors"][0]["field"]
            == "eligibility.segment_ids"
        )
        await launch(client, tenant_a, points_campaign(eligibility={"segment_ids": [segment.json()["id"]]}))
        await refresh(db)
        cur = await db.execute("SELECT member_id FROM segment_memberships")
        assert await cur.fetchall() == [(vip,)]
        client.cookies.clear()
        vip_scan = await scan(client, issued.urls[2], "device-seg-vip")
        client.cookies.clear()
        other_scan = await scan(client, issued.urls[3], "device-seg-other")
        assert vip_scan["member"]["id"] == str(vip) and other_scan["member"]["id"] == str(other)
        assert vip_scan["reward"]["points"] == 100
        assert other_scan["reward"] is None or not other_scan["reward"]["points"]
        in_use = await client.delete(f"/v1/segments/{segment.json()['id']}", headers=marketer)
        assert_problem(in_use, 409, "segment-in-use")
        # Untagged (which touches the member), it leaves the segment at the next refresh.
        await client.delete(f"/v1/members/{vip}/tags/VIP", headers=marketer)
        cur = await db.execute(
            "SELECT updated_at > now() - interval '1 minute' FROM members WHERE id = %s", (vip,)
        )
        assert await cur.fetchone() == (True,)
        await refresh(db)
        cur = await db.execute("SELECT count(*) FROM segment_memberships")
        assert await cur.fetchone() == (0,)


class TestTierDraws:
    async def test_a_tier_draw_bonus_is_used_recorded_and_verifiable(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        settings: Settings,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=50)
        marketer = tenant_a.headers(Role.MARKETER)
        ladder = {
            "tiers": [
                {"name": "普通"},
                {"name": "金卡", "min_points_earned": 100, "draw_weight_bonus_pct": 1000},
            ]
        }
        assert (await client.put("/v1/member-tiers", json=ladder, headers=marketer)).status_code == 200
        gold = uuid.UUID((await scan(client, issued.urls[0], "device-draw-gold"))["member"]["id"])
        await ledger.earn(db, ledger.Member(tenant_a.brand_id, gold), 100, reason="t", source="t", now=NOW)
        await refresh(db)
        campaign_id = await launch(client, tenant_a, draw_campaign(stock=100, no_prize_weight=10))
        for n in range(1, 21):
            client.cookies.clear()
            await scan(client, issued.urls[n], "device-draw-gold")
            client.cookies.clear()
            await scan(client, issued.urls[20 + n], f"device-draw-plain-{n}")
        cur = await db.execute(
            "SELECT d.scan_id, d.drawn_prize_id, d.weight_bonus_pct, d.member_id = %s FROM draws d", (gold,)
        )
        rows = await cur.fetchall()
        assert len(rows) == 40
        assert {(bonus, is_gold) for _, _, bonus, is_gold in rows} == {(1000, True), (0, False)}
        assert (await step(client, tenant_a, campaign_id, "end")).status_code == 200
        audit = await draws.audit_draws(db, uuid.UUID(campaign_id))
        assert (audit.checked, audit.mismatched) == (40, [])
        # The bonus changed outcomes: the same scans drawn with the plain weights differ somewhere.
        cur = await db.execute("SELECT seed_revealed FROM campaigns WHERE id = %s", (campaign_id,))
        seed = (await cur.fetchone() or [b""])[0]
        prizes = await fetch_all(db, draws.QUERIES["list_prizes"], {"campaign_id": campaign_id}, draws.Prize)
        plain = [draws.pick(seed, scan_id, prizes, 10) for scan_id, _, bonus, _ in rows if bonus == 1000]
        drawn = [prize_id for _, prize_id, bonus, _ in rows if bonus == 1000]
        assert [p.id if p else None for p in plain] != drawn


class TestAcquisition:
    async def test_the_campaign_behind_a_members_first_scan_is_its_channel(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        before = uuid.UUID((await scan(client, issued.urls[0], "device-acq-old"))["member"]["id"])
        campaign_id = await launch(client, tenant_a, points_campaign())
        client.cookies.clear()
        member_id = (await scan(client, issued.urls[1], "device-acq-new"))["member"]["id"]
        client.cookies.clear()
        await scan(client, issued.urls[2], "device-acq-old")  # an existing member: not acquired by it
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        acquired = (await client.get(f"/v1/members/{member_id}", headers=cs)).json()
        assert acquired["acquired_campaign_id"] == campaign_id
        assert acquired["acquired_product_id"] == str(issued.product.id)
        assert (await client.get(f"/v1/members/{before}", headers=cs)).json()["acquired_campaign_id"] is None
