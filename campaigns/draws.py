"""Lucky draws: a seeded, reproducible outcome per scan, awarded only if stock, budget and caps allow.

Outcome: HMAC-SHA256(seed, scan id) picks a prize by weight (or "no prize"). The campaign publishes
SHA-256(seed) when it starts and reveals the seed when it ends, so anyone can recompute every draw
(`verify_draws`). Award: a conditional update takes the next prize slot (`awarded < stock`), another
spends the budget (`spent + cost <= budget`), a third the day's budget; all in one savepoint, so a
draw either gets everything or nothing. Redis may hint "sold out" to skip the work, never decide it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from campaigns.errors import CampaignNotFound, InvalidCampaign, SeedNotRevealed
from codegen import keys
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "draws.sql")
DrawResult = Literal["won", "no_prize", "sold_out", "over_budget", "capped"]


class PrizeIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["physical", "coupon", "points", "cash"]
    weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
    stock: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    cost_cents: Annotated[int, msgspec.Meta(ge=0)]
    points: Annotated[int, msgspec.Meta(ge=1)] | None = None


class DrawCampaignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str = "Asia/Shanghai"
    budget_cents: Annotated[int, msgspec.Meta(ge=0)]
    daily_budget_cents: Annotated[int, msgspec.Meta(ge=0)] | None = None
    member_daily_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    member_campaign_cap: Annotated[int, msgspec.Meta(ge=1)] | None = None
    no_prize_weight: Annotated[int, msgspec.Meta(ge=0)] = 0
    prizes: Annotated[list[PrizeIn], msgspec.Meta(min_length=1, max_length=50)]


class Prize(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    kind: str
    weight: int
    stock: int
    awarded: int
    cost_cents: int
    points: int | None


class DrawSetup(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    no_prize_weight: int
    seed_sealed: bytes
    seed_hash: bytes
    time_zone: str
    member_daily_cap: int | None
    member_campaign_cap: int | None
    daily_budget_cents: int | None


class _DrawAuditRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: str
    status: str
    seed_revealed: bytes | None
    draws: int


class DrawAudit(msgspec.Struct, frozen=True):
    """The result of recomputing a finished campaign's draws: how many, and the scans that differ."""

    campaign_id: uuid.UUID
    checked: int
    mismatched: list[uuid.UUID]


class DrawOutcome(msgspec.Struct, frozen=True):
    result: DrawResult
    prize: Prize | None = None
    slot: int | None = None


def _seed_aad(brand_id: uuid.UUID) -> bytes:
    return f"onecode:draw-seed:{brand_id}".encode()


def new_seed(brand_id: uuid.UUID, master_key: bytes) -> tuple[bytes, bytes]:
    """A fresh secret seed as (sealed under the master key, SHA-256 to publish): the draw's commitment."""
    seed = secrets.token_bytes(32)
    return keys.seal(master_key, seed, aad=_seed_aad(brand_id)), hashlib.sha256(seed).digest()


async def create_draw_campaign(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, data: DrawCampaignIn, master_key: bytes
) -> uuid.UUID:
    """A draw campaign with its prize pool; the seed is generated, sealed, and its hash is public."""
    if data.ends_at <= data.starts_at:
        raise InvalidCampaign("ends_at", "the campaign must end after it starts")
    try:
        zoneinfo.ZoneInfo(data.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidCampaign("time_zone", f"unknown time zone {data.time_zone!r}") from None
    if sum(p.weight for p in data.prizes) + data.no_prize_weight == 0:
        raise InvalidCampaign("prizes", "the weights of the prizes and of 'no prize' sum to zero")
    seed_sealed, seed_hash = new_seed(brand_id, master_key)
    cur = await conn.execute(
        QUERIES["insert_campaign"],
        {
            "brand_id": brand_id,
            "name": data.name,
            "status": "active",
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
            "time_zone": data.time_zone,
            "budget_cents": data.budget_cents,
            "daily_budget_cents": data.daily_budget_cents,
            "member_daily_cap": data.member_daily_cap,
            "member_campaign_cap": data.member_campaign_cap,
            "no_prize_weight": data.no_prize_weight,
            "seed_sealed": seed_sealed,
            "seed_hash": seed_hash,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    campaign_id: uuid.UUID = row[0]
    for prize in data.prizes:
        await conn.execute(
            QUERIES["insert_prize"], {"campaign_id": campaign_id, **msgspec.structs.asdict(prize)}
        )
    return campaign_id


def pick(seed: bytes, scan_id: uuid.UUID, prizes: Sequence[Prize], no_prize_weight: int) -> Prize | None:
    """The deterministic outcome of one draw: a function of the seed and the scan id only."""
    total = sum(p.weight for p in prizes) + no_prize_weight
    # 256 bits reduced modulo a total below 2**40: the bias is below 2**-200.
    ticket = int.from_bytes(hmac.new(seed, scan_id.bytes, hashlib.sha256).digest(), "big") % total
    for prize in sorted(prizes, key=lambda p: p.id):
        if ticket < prize.weight:
            return prize
        ticket -= prize.weight
    return None


async def draw(
    conn: AsyncConnection[Any],
    *,
    campaign_id: uuid.UUID,
    member_id: uuid.UUID,
    scan_id: uuid.UUID,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> DrawOutcome:
    """Draw for one scan inside the caller's transaction; the draw is recorded whatever its result."""
    setup = await fetch_one(conn, QUERIES["get_draw_setup"], {"campaign_id": campaign_id}, DrawSetup)
    if setup is None:
        raise InvalidCampaign("campaign_id", f"campaign {campaign_id} not found")
    seed = keys.unseal(master_keys, setup.seed_sealed, aad=_seed_aad(setup.brand_id))
    prizes = await fetch_all(conn, QUERIES["list_prizes"], {"campaign_id": campaign_id}, Prize)
    drawn = pick(seed, scan_id, prizes, setup.no_prize_weight)
    day = now.astimezone(zoneinfo.ZoneInfo(setup.time_zone)).date()
    outcome = DrawOutcome("no_prize") if drawn is None else await _award(conn, setup, drawn, member_id, day)
    await conn.execute(
        QUERIES["insert_draw"],
        {
            "campaign_id": campaign_id,
            "scan_id": scan_id,
            "member_id": member_id,
            "drawn_prize_id": None if drawn is None else drawn.id,
            "prize_id": outcome.prize.id if outcome.prize else None,
            "slot": outcome.slot,
            "result": outcome.result,
            "drawn_at": now,
        },
    )
    return outcome


async def _award(
    conn: AsyncConnection[Any], setup: DrawSetup, prize: Prize, member_id: uuid.UUID, day: dt.date
) -> DrawOutcome:
    params = {"campaign_id": setup.id, "member_id": member_id, "day": day}
    if setup.member_daily_cap or setup.member_campaign_cap:
        await conn.execute(QUERIES["lock_member_wins"], params)
        cur = await conn.execute(QUERIES["count_member_wins"], params)
        counts = await cur.fetchone()
        assert counts is not None
        total, today = counts
        if (setup.member_campaign_cap and total >= setup.member_campaign_cap) or (
            setup.member_daily_cap and today >= setup.member_daily_cap
        ):
            return DrawOutcome("capped")
    # A savepoint: the slot, the budget and the day's budget are taken together or not at all.
    try:
        async with conn.transaction():
            cur = await conn.execute(QUERIES["take_prize_slot"], {"prize_id": prize.id})
            taken = await cur.fetchone()
            if taken is None:
                return DrawOutcome("sold_out")
            slot, cost = taken
            if not await _spend(conn, setup, cost, day):
                raise _OverBudget  # noqa: TRY301 - the raise is what rolls the savepoint back
            await conn.execute(QUERIES["add_member_win"], params)
            return DrawOutcome("won", prize=prize, slot=slot)
    except _OverBudget:
        return DrawOutcome("over_budget")


class _OverBudget(Exception):
    """Raised only to roll the savepoint back (the prize slot taken just before is returned)."""


async def _spend(conn: AsyncConnection[Any], setup: DrawSetup, cost: int, day: dt.date) -> bool:
    if cost == 0:
        return True
    cur = await conn.execute(QUERIES["spend_budget"], {"campaign_id": setup.id, "cost": cost})
    if await cur.fetchone() is None:
        return False
    if setup.daily_budget_cents is None:
        return True
    if cost > setup.daily_budget_cents:
        return False
    cur = await conn.execute(
        QUERIES["spend_daily_budget"],
        {"campaign_id": setup.id, "day": day, "cost": cost, "daily_budget": setup.daily_budget_cents},
    )
    return await cur.fetchone() is not None


async def reveal_seed(
    conn: AsyncConnection[Any], campaign_id: uuid.UUID, master_keys: Sequence[bytes]
) -> bytes:
    """End the campaign and publish its seed, so that every draw can be recomputed."""
    setup = await fetch_one(conn, QUERIES["get_draw_setup"], {"campaign_id": campaign_id}, DrawSetup)
    if setup is None:
        raise InvalidCampaign("campaign_id", f"campaign {campaign_id} not found")
    seed = keys.unseal(master_keys, setup.seed_sealed, aad=_seed_aad(setup.brand_id))
    await conn.execute(QUERIES["reveal_seed"], {"campaign_id": campaign_id, "seed": seed})
    return seed


async def verify_draws(conn: AsyncConnection[Any], campaign_id: uuid.UUID, seed: bytes) -> list[uuid.UUID]:
    """Recompute every draw from the revealed seed; returns the scan ids whose recorded outcome differs."""
    setup = await fetch_one(conn, QUERIES["get_draw_setup"], {"campaign_id": campaign_id}, DrawSetup)
    if setup is None or hashlib.sha256(seed).digest() != setup.seed_hash:
        raise InvalidCampaign("seed", "the seed does not match the hash published at the start")
    prizes = await fetch_all(conn, QUERIES["list_prizes"], {"campaign_id": campaign_id}, Prize)
    cur = await conn.execute(QUERIES["list_draws"], {"campaign_id": campaign_id})
    mismatched = []
    for scan_id, drawn_prize_id in await cur.fetchall():
        expected = pick(seed, scan_id, prizes, setup.no_prize_weight)
        if (expected.id if expected else None) != drawn_prize_id:
            mismatched.append(scan_id)
    return mismatched


async def audit_draws(conn: AsyncConnection[Any], campaign_id: uuid.UUID) -> DrawAudit:
    """Check every draw of an ended campaign against its revealed seed (`onecode campaign verify-draws`)."""
    row = await fetch_one(conn, QUERIES["get_draw_audit"], {"campaign_id": campaign_id}, _DrawAuditRow)
    if row is None or row.kind != "lucky_draw":
        raise CampaignNotFound("lucky draw", campaign_id)
    if row.seed_revealed is None:
        raise SeedNotRevealed(status=row.status)
    mismatched = await verify_draws(conn, campaign_id, row.seed_revealed)
    return DrawAudit(campaign_id=campaign_id, checked=row.draws, mismatched=mismatched)
