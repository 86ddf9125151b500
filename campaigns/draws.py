"""Lucky draws: a seeded, reproducible outcome per scan, and the audit that recomputes them.

Outcome: HMAC-SHA256(seed, scan id) picks a prize by weight (or "no prize"). The campaign publishes
SHA-256(seed) when it starts and reveals the seed when it ends, so anyone can recompute every draw
(`verify_draws`). Whether a picked prize is awarded (stock, budget, caps) is decided in PostgreSQL
by `award_scan_rewards` (schema 0007), in the scan's own transaction: see campaigns.book.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
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


class PrizeIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Literal["physical", "coupon", "points", "cash"]
    weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
    stock: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    cost_cents: Annotated[int, msgspec.Meta(ge=0, le=10**15)]
    points: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    # Coupon prizes: the template (see campaigns.coupons) whose coupon the winner gets.
    coupon_template_id: uuid.UUID | None = None


class Prize(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    kind: str
    weight: int
    stock: int
    awarded: int
    cost_cents: int
    points: int | None
    coupon_template_id: uuid.UUID | None = None


class DrawSetup(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    no_prize_weight: int
    seed_sealed: bytes
    seed_hash: bytes


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


def seed_aad(brand_id: uuid.UUID) -> bytes:
    return f"onecode:draw-seed:{brand_id}".encode()


def unseal_seed(brand_id: uuid.UUID, sealed: bytes, master_keys: Sequence[bytes]) -> bytes:
    return keys.unseal(master_keys, sealed, aad=seed_aad(brand_id))


def new_seed(brand_id: uuid.UUID, master_key: bytes) -> tuple[bytes, bytes]:
    """A fresh secret seed as (sealed under the master key, SHA-256 to publish): the draw's commitment."""
    seed = secrets.token_bytes(32)
    return keys.seal(master_key, seed, aad=seed_aad(brand_id)), hashlib.sha256(seed).digest()


def pick(
    seed: bytes, scan_id: uuid.UUID, prizes: Sequence[Prize], no_prize_weight: int, bonus_pct: int = 0
) -> Prize | None:
    """The deterministic outcome of one draw: a function of the seed, the scan id and the member's tier
    bonus (prize weights times 1 + bonus/100 against the same no-prize weight; 0: the plain weights)."""
    prize_scale, no_prize_scale = (100 + bonus_pct, 100) if bonus_pct else (1, 1)
    total = sum(p.weight for p in prizes) * prize_scale + no_prize_weight * no_prize_scale
    # 256 bits reduced modulo a total below 2**50: the bias is below 2**-200.
    ticket = int.from_bytes(hmac.new(seed, scan_id.bytes, hashlib.sha256).digest(), "big") % total
    for prize in sorted(prizes, key=lambda p: p.id):
        weight = prize.weight * prize_scale
        if ticket < weight:
            return prize
        ticket -= weight
    return None


async def reveal_seed(
    conn: AsyncConnection[Any], campaign_id: uuid.UUID, master_keys: Sequence[bytes]
) -> bytes:
    """End the campaign and publish its seed, so that every draw can be recomputed."""
    setup = await fetch_one(conn, QUERIES["get_draw_setup"], {"campaign_id": campaign_id}, DrawSetup)
    if setup is None:
        raise InvalidCampaign("campaign_id", f"campaign {campaign_id} not found")
    seed = keys.unseal(master_keys, setup.seed_sealed, aad=seed_aad(setup.brand_id))
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
    for scan_id, drawn_prize_id, bonus_pct in await cur.fetchall():
        expected = pick(seed, scan_id, prizes, setup.no_prize_weight, bonus_pct)
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
