"""Lucky draws never oversell: stock, budget and caps hold under concurrency; draws are auditable."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg

from campaigns import draws
from service.settings import Settings
from tests.conftest import Tenant

NOW = dt.datetime(2026, 11, 11, 20, 0, tzinfo=dt.UTC)


def campaign(prizes: list[draws.PrizeIn], **extra: Any) -> draws.DrawCampaignIn:
    return draws.DrawCampaignIn(
        name="Double 11",
        starts_at=NOW - dt.timedelta(days=1),
        ends_at=NOW + dt.timedelta(days=10),
        prizes=prizes,
        **{"budget_cents": 10_000_000, **extra},
    )


async def setup(
    db: psycopg.AsyncConnection[Any],
    settings: Settings,
    tenant: Tenant,
    data: draws.DrawCampaignIn,
    members: int,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    campaign_id = await draws.create_draw_campaign(
        db, brand_id=tenant.brand_id, data=data, master_key=settings.master_key
    )
    member_ids = [uuid.uuid4() for _ in range(members)]
    async with db.cursor() as cur:
        await cur.executemany(
            "INSERT INTO members (id, brand_id) VALUES (%s, %s)", [(m, tenant.brand_id) for m in member_ids]
        )
    return campaign_id, member_ids


async def draw_concurrently(
    settings: Settings, campaign_id: uuid.UUID, member_ids: list[uuid.UUID], connections: int = 16
) -> list[draws.DrawOutcome]:
    """One draw per member, spread over `connections` concurrent transactions."""
    queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    for member_id in member_ids:
        queue.put_nowait(member_id)
    outcomes: list[draws.DrawOutcome] = []

    async def worker() -> None:
        async with await psycopg.AsyncConnection.connect(settings.database_url or "") as conn:
            while not queue.empty():
                member_id = queue.get_nowait()
                async with conn.transaction():
                    outcomes.append(
                        await draws.draw(
                            conn,
                            campaign_id=campaign_id,
                            member_id=member_id,
                            scan_id=uuid.uuid4(),
                            master_keys=settings.all_master_keys,
                            now=NOW,
                        )
                    )

    await asyncio.gather(*(worker() for _ in range(connections)))
    return outcomes


async def totals(db: psycopg.AsyncConnection[Any], campaign_id: uuid.UUID) -> tuple[int, int, int]:
    cur = await db.execute(
        "SELECT (SELECT sum(awarded) FROM prizes WHERE campaign_id = %(c)s),"
        " (SELECT spent_cents FROM campaigns WHERE id = %(c)s),"
        " (SELECT count(*) FROM draws WHERE campaign_id = %(c)s AND result = 'won')",
        {"c": campaign_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


class TestNeverOversell:
    async def test_500_draws_for_5_prizes_give_exactly_5_winners(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """Win probability 1, stock 5: exactly 5 winners, stock 0, spend = 5 prize costs, slots 1..5."""
        data = campaign([draws.PrizeIn(name="Phone", kind="physical", weight=1, stock=5, cost_cents=300_000)])
        campaign_id, members = await setup(db, settings, tenant_a, data, members=500)
        outcomes = await draw_concurrently(settings, campaign_id, members)
        assert sorted(o.slot for o in outcomes if o.result == "won") == [1, 2, 3, 4, 5]
        assert sum(o.result == "sold_out" for o in outcomes) == 495
        assert await totals(db, campaign_id) == (5, 1_500_000, 5)

    async def test_budget_stops_awards_at_the_budget_exactly(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """Stock 50 but money for 3: three winners, then over_budget; spend equals the budget."""
        data = campaign(
            [draws.PrizeIn(name="Voucher", kind="cash", weight=1, stock=50, cost_cents=1_000)],
            budget_cents=3_000,
        )
        campaign_id, members = await setup(db, settings, tenant_a, data, members=60)
        outcomes = await draw_concurrently(settings, campaign_id, members)
        assert sum(o.result == "won" for o in outcomes) == 3
        assert await totals(db, campaign_id) == (3, 3_000, 3)

    async def test_member_cap_holds_under_concurrency(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """One member drawing 30 times at once with a campaign cap of 2 wins exactly twice."""
        data = campaign(
            [draws.PrizeIn(name="Cap", kind="physical", weight=1, stock=100, cost_cents=100)],
            member_campaign_cap=2,
        )
        campaign_id, members = await setup(db, settings, tenant_a, data, members=1)
        outcomes = await draw_concurrently(settings, campaign_id, members * 30, connections=10)
        assert sum(o.result == "won" for o in outcomes) == 2
        assert sum(o.result == "capped" for o in outcomes) == 28


class TestAuditableDraws:
    async def test_revealed_seed_reproduces_every_draw_and_spots_tampering(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """verify_draws recomputes all outcomes from the seed; an edited outcome is reported."""
        data = campaign(
            [
                draws.PrizeIn(name="Gold", kind="physical", weight=1, stock=3, cost_cents=10_000),
                draws.PrizeIn(name="Points", kind="points", weight=5, stock=100, cost_cents=10, points=50),
            ],
            no_prize_weight=10,
        )
        campaign_id, members = await setup(db, settings, tenant_a, data, members=80)
        await draw_concurrently(settings, campaign_id, members, connections=4)
        seed = await draws.reveal_seed(db, campaign_id, settings.all_master_keys)
        assert await draws.verify_draws(db, campaign_id, seed) == []
        cur = await db.execute(
            "UPDATE draws SET drawn_prize_id = NULL WHERE campaign_id = %s AND drawn_prize_id IS NOT NULL"
            " AND scan_id = (SELECT scan_id FROM draws WHERE campaign_id = %s AND drawn_prize_id IS NOT NULL"
            " LIMIT 1) RETURNING scan_id",
            (campaign_id, campaign_id),
        )
        tampered = await cur.fetchone()
        assert tampered is not None
        assert await draws.verify_draws(db, campaign_id, seed) == [tampered[0]]
