"""Brand-defined tiers and membership settings (lifecycle thresholds, approval threshold, tier window)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from campaigns.members import recompute
from campaigns.members.errors import InvalidMemberInput, TierInUse
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "tiers.sql")
Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]


class TierIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    min_points_earned: Annotated[int, msgspec.Meta(ge=0)] = 0
    min_scans: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Benefits: 150 earns 1.5x points; a bonus of 20 adds 20% to the member's draw weights.
    points_multiplier_pct: Annotated[int, msgspec.Meta(ge=100, le=1000)] = 100
    draw_weight_bonus_pct: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    # The tier's place in the list, as GET /v1/member-tiers shows it, so that a ladder read can be sent
    # back as it is: the place in the list decides, and a rank that disagrees with it is refused.
    rank: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None


class Tier(msgspec.Struct, frozen=True):
    rank: int
    name: str
    min_points_earned: int
    min_scans: int
    points_multiplier_pct: int
    draw_weight_bonus_pct: int


class TiersIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole ladder, lowest first: rank 0 is the entry tier every member starts in."""

    tiers: Annotated[list[TierIn], msgspec.Meta(min_length=1, max_length=21)]


class Ladder(msgspec.Struct, frozen=True):
    """The ladder as read, lowest first: the shape TiersIn takes (a read ladder can be written back)."""

    tiers: list[Tier]


class MemberSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    new_days: Days = 30
    active_days: Days = 90
    churn_days: Days = 365
    adjustment_approval_points: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 1000
    tier_window_days: Days = 365
    # Retention: erase members idle this long (and holding no unexpired points); None keeps them.
    erase_inactive_after_days: Annotated[int, msgspec.Meta(ge=30, le=3650)] | None = None


async def list_tiers(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[Tier]:
    return await fetch_all(conn, QUERIES["list_tiers"], {"brand_id": brand_id}, Tier)


async def put_tiers(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: TiersIn) -> list[Tier]:
    """Replace the ladder; each tier must ask strictly more than the one below (in points or scans)."""
    await lock_definitions(conn, brand_id)  # its check and a rule naming it cannot pass each other
    for i, tier in enumerate(data.tiers):
        if tier.rank is not None and tier.rank != i:
            raise InvalidMemberInput(f"tiers[{i}].rank", f"is the tier's place in the list: {i} here")
    first = data.tiers[0]
    if first.min_points_earned or first.min_scans:
        raise InvalidMemberInput("tiers[0]", "the entry tier has no thresholds")
    for i, (lower, upper) in enumerate(zip(data.tiers, data.tiers[1:], strict=False), start=1):
        if upper.min_points_earned < lower.min_points_earned or upper.min_scans < lower.min_scans:
            raise InvalidMemberInput(f"tiers[{i}]", "a higher tier cannot ask less than the one below")
        if (upper.min_points_earned, upper.min_scans) == (lower.min_points_earned, lower.min_scans):
            raise InvalidMemberInput(f"tiers[{i}]", "asks the same as the tier below")
    if len({t.name for t in data.tiers}) != len(data.tiers):
        raise InvalidMemberInput("tiers", "tier names must differ")
    cur = await conn.execute(
        QUERIES["campaigns_naming_other_tiers"], {"brand_id": brand_id, "names": [t.name for t in data.tiers]}
    )
    if dropped := dict(await cur.fetchall()):
        raise TierInUse(dropped)
    await conn.execute(QUERIES["clear_tiers"], {"brand_id": brand_id})
    for rank, tier in enumerate(data.tiers):
        await conn.execute(
            QUERIES["insert_tier"], {**msgspec.structs.asdict(tier), "brand_id": brand_id, "rank": rank}
        )
    await recompute.request(conn, brand_id, "tier ladder replaced")
    return await list_tiers(conn, brand_id)


async def get_settings(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> MemberSettings:
    found = await fetch_one(conn, QUERIES["get_settings"], {"brand_id": brand_id}, MemberSettings)
    assert found is not None
    return found


async def put_settings(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, data: MemberSettings
) -> MemberSettings:
    if not data.new_days <= data.active_days < data.churn_days:
        raise InvalidMemberInput("active_days", "need new_days <= active_days < churn_days")
    before = await get_settings(conn, brand_id)
    await conn.execute(QUERIES["put_settings"], {"brand_id": brand_id, **msgspec.structs.asdict(data)})
    if _staging(before) != _staging(data):
        await recompute.request(conn, brand_id, "lifecycle thresholds or tier window changed")
    return data


def _staging(settings: MemberSettings) -> tuple[int, ...]:
    """The settings every member's lifecycle stage and tier depend on."""
    return (settings.new_days, settings.active_days, settings.churn_days, settings.tier_window_days)
