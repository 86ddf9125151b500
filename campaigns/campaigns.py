"""The campaign model marketers configure: rules validated on save, and the status lifecycle.

Lifecycle: draft -> scheduled -> active <-> paused -> ended (a draft may also be activated directly).
Only drafts are freely editable; a live campaign's rules change only with an explicit `live_change`
flag, and every change is audited. A lucky draw commits to its seed (the hash is published) when it
leaves the draft state and reveals it when it ends, using the seed logic of `campaigns.draws`.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import psycopg.errors
from psycopg.types.json import Jsonb

from antifraud import regions
from campaigns import coupons, draws
from campaigns.errors import (
    CampaignLocked,
    CampaignNotFound,
    CampaignOverlap,
    InvalidCampaign,
    InvalidTransition,
    LiveChangeNotConfirmed,
)
from codegen.products import count_brand_products
from service import audit
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "campaigns.sql")

CampaignKind = Literal["points", "lucky_draw", "coupon"]
CampaignStatus = Literal["draft", "scheduled", "active", "paused", "ended"]
Action = Literal["schedule", "activate", "pause", "resume", "end"]

# Which statuses each action leaves from, and where it goes. The database CHECK bounds the values;
# this table is the one place that decides the allowed steps.
TRANSITIONS: dict[Action, tuple[frozenset[str], CampaignStatus]] = {
    "schedule": (frozenset({"draft"}), "scheduled"),
    "activate": (frozenset({"draft", "scheduled"}), "active"),
    "pause": (frozenset({"active"}), "paused"),
    "resume": (frozenset({"paused"}), "active"),
    "end": (frozenset({"scheduled", "active", "paused"}), "ended"),
}
LIVE_STATUSES = frozenset({"scheduled", "active", "paused"})

Cents = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Cap = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class TimeWindow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A daily window in the campaign's time zone, start inclusive, end exclusive."""

    start: dt.time
    end: dt.time


class Eligibility(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which scans a campaign rewards; an empty list means no restriction on that dimension."""

    product_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=1000)] = []
    batch_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=1000)] = []
    # Member segments (saved filters): the member must be in one of them, as of the last refresh.
    segment_ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=20)] = []
    # ISO 3166-2 provinces (CN-ZJ) or whole countries (CN); a scan of unknown region does not qualify.
    regions: Annotated[list[Label], msgspec.Meta(max_length=500)] = []
    # A code earns at most one reward whatever this says; false lets a code first scanned outside the
    # campaign (before it started, outside its hours) be rewarded on a later scan.
    first_scan_only: bool = True
    # Stored and validated now; evaluated once the members issue defines tiers.
    member_tiers: Annotated[list[Label], msgspec.Meta(max_length=50)] = []
    members: Literal["any", "new", "existing"] = "any"
    time_windows: Annotated[list[TimeWindow], msgspec.Meta(max_length=24)] = []


class PointsReward(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Points per rewarded scan: `points` for any product, `per_product` overriding it for some."""

    points: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    per_product: dict[uuid.UUID, Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]] = {}
    # Percent, integer so points stay integers: {"gold": 150} gives gold members 1.5 times the points.
    tier_multipliers_pct: dict[Label, Annotated[int, msgspec.Meta(ge=1, le=10_000)]] = {}
    # What one point costs the campaign's budget; the common convention is 100 points to the yuan.
    # At least a cent on save (check_rules; campaigns saved before may hold 0 and still load): points that
    # cost the budget nothing would escape its limits.
    cents_per_point: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 1


class CampaignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    kind: CampaignKind
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    time_zone: str = "Asia/Shanghai"
    budget_cents: Cents
    daily_budget_cents: Cents | None = None
    member_daily_cap: Cap | None = None
    member_campaign_cap: Cap | None = None
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] = 0
    stackable: bool = False
    eligibility: Eligibility = msgspec.field(default_factory=Eligibility)
    points_reward: PointsReward | None = None
    # Coupon campaigns only: each rewarded scan gets one coupon of this template (campaigns.coupons).
    coupon_template_id: uuid.UUID | None = None
    # Lucky draws only: the prize pool (see campaigns.draws) and the weight of "no prize".
    prizes: Annotated[list[draws.PrizeIn], msgspec.Meta(max_length=50)] = []
    no_prize_weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] = 0


class CampaignPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent ones stay. `live_change` must be true to change a live campaign."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    starts_at: AwareDatetime | msgspec.UnsetType = msgspec.UNSET
    ends_at: AwareDatetime | msgspec.UnsetType = msgspec.UNSET
    time_zone: str | msgspec.UnsetType = msgspec.UNSET
    budget_cents: Cents | msgspec.UnsetType = msgspec.UNSET
    daily_budget_cents: Cents | msgspec.UnsetType | None = msgspec.UNSET
    member_daily_cap: Cap | msgspec.UnsetType | None = msgspec.UNSET
    member_campaign_cap: Cap | msgspec.UnsetType | None = msgspec.UNSET
    priority: Annotated[int, msgspec.Meta(ge=-1000, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    stackable: bool | msgspec.UnsetType = msgspec.UNSET
    eligibility: Eligibility | msgspec.UnsetType = msgspec.UNSET
    points_reward: PointsReward | msgspec.UnsetType | None = msgspec.UNSET
    coupon_template_id: uuid.UUID | msgspec.UnsetType = msgspec.UNSET
    no_prize_weight: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)] | msgspec.UnsetType = msgspec.UNSET
    # A draft's whole prize pool, replacing the one saved; a live draw's stock changes by top-up only.
    prizes: Annotated[list[draws.PrizeIn], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    live_change: bool = False


class Campaign(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    name: str
    kind: CampaignKind
    status: CampaignStatus
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    budget_cents: int
    spent_cents: int
    daily_budget_cents: int | None
    member_daily_cap: int | None
    member_campaign_cap: int | None
    priority: int
    stackable: bool
    eligibility: Eligibility
    points_reward: PointsReward | None
    coupon_template_id: uuid.UUID | None
    no_prize_weight: int
    # Hex SHA-256 of the draw's seed, published once committed; the seed itself once the campaign ended.
    seed_hash: str | None
    seed_revealed: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    prizes: list[draws.Prize]
    # Advice that does not block saving, e.g. a prize above the legal cap for promotional lotteries.
    warnings: list[str] = []


def with_warnings(campaign: Campaign, *, legal_cap_cents: int) -> Campaign:
    """The campaign with its warnings: China's rules on promotional lotteries cap a single prize's value
    (50,000 CNY by default, `ONECODE_PRIZE_LEGAL_CAP_CENTS`); the marketer decides, the API says so."""
    found = prize_warnings(campaign.prizes, legal_cap_cents=legal_cap_cents)
    return msgspec.structs.replace(campaign, warnings=found) if found else campaign


def prize_warnings(prizes: Sequence[draws.PrizeIn | draws.Prize], *, legal_cap_cents: int) -> list[str]:
    return [
        f"prize {prize.name!r} is worth {prize.cost_cents / 100:,.2f}, above the legal cap of "
        f"{legal_cap_cents / 100:,.2f} for a single prize of a promotional lottery"
        for prize in prizes
        if prize.cost_cents > legal_cap_cents
    ]


class TopUpIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    add: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)]


class _Count(msgspec.Struct, frozen=True):
    n: int


class _Rival(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    eligibility: Eligibility


def check_rules(data: CampaignIn) -> list[tuple[str, str]]:
    """Every rule a campaign's settings break, as (field, message); empty when valid."""
    return [*_check_schedule(data), *_check_limits(data), *_check_reward(data)]


def _check_schedule(data: CampaignIn) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if data.ends_at <= data.starts_at:
        found.append(("ends_at", "the campaign must end after it starts"))
    try:
        zoneinfo.ZoneInfo(data.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        found.append(("time_zone", f"unknown time zone {data.time_zone!r}"))
    unknown = [code for code in data.eligibility.regions if not regions.is_region(code)]
    if unknown:
        found.append(("eligibility.regions", f"not ISO 3166-2 provinces or countries: {', '.join(unknown)}"))
    for i, window in enumerate(data.eligibility.time_windows):
        # An overnight window is written as two windows (22:00-23:59:59 and 00:00-06:00): one rule, no wrap.
        if window.start >= window.end:
            found.append((f"eligibility.time_windows[{i}]", "a window must end after it starts"))
        if window.start.tzinfo is not None or window.end.tzinfo is not None:
            found.append((f"eligibility.time_windows[{i}]", "times are local to the campaign's time zone"))
    return found


def _check_limits(data: CampaignIn) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if data.daily_budget_cents is not None and data.daily_budget_cents > data.budget_cents:
        found.append(("daily_budget_cents", "the daily budget exceeds the total budget"))
    if (
        data.member_daily_cap is not None
        and data.member_campaign_cap is not None
        and data.member_daily_cap > data.member_campaign_cap
    ):
        found.append(("member_daily_cap", "the daily cap per member exceeds the cap per campaign"))
    return found


def _check_reward(data: CampaignIn) -> list[tuple[str, str]]:
    found = _check_coupon_templates(data)
    if data.kind == "coupon":
        if data.points_reward is not None or data.prizes or data.no_prize_weight:
            found.append(("coupon_template_id", "a coupon campaign gives coupons, not points or prizes"))
    elif data.kind == "points":
        reward = data.points_reward
        if reward is None:
            found.append(("points_reward", "a points campaign needs a points reward"))
        elif reward.points is None and not reward.per_product:
            found.append(("points_reward", "give a fixed amount of points or an amount per product"))
        if reward is not None and reward.cents_per_point < 1:
            found.append(("points_reward.cents_per_point", "a point costs the budget at least a cent"))
        if data.prizes or data.no_prize_weight:
            found.append(("prizes", "only lucky draws have prizes"))
    else:
        if data.points_reward is not None:
            found.append(("points_reward", "a lucky draw rewards with prizes, not a points reward"))
        if data.prizes and sum(p.weight for p in data.prizes) + data.no_prize_weight == 0:
            found.append(("prizes", "the weights of the prizes and of 'no prize' sum to zero"))
    return found


def _check_prize_points(data: CampaignIn) -> list[tuple[str, str]]:
    """A points prize gives a number of points; no other prize does."""
    found: list[tuple[str, str]] = []
    for i, prize in enumerate(data.prizes):
        if prize.kind == "points" and prize.points is None:
            found.append((f"prizes[{i}].points", "a points prize says how many points it gives"))
        elif prize.kind != "points" and prize.points is not None:
            found.append((f"prizes[{i}].points", f"a {prize.kind} prize gives no points"))
    return found


def _check_coupon_templates(data: CampaignIn) -> list[tuple[str, str]]:
    """A coupon campaign and each coupon prize name their template; nothing else does."""
    found: list[tuple[str, str]] = _check_prize_points(data)
    if (data.kind == "coupon") != (data.coupon_template_id is not None):
        found.append(("coupon_template_id", "a coupon campaign, and only one, names its coupon template"))
    found.extend(
        (f"prizes[{i}].coupon_template_id", "a coupon prize, and only one, names its template")
        for i, prize in enumerate(data.prizes)
        if (prize.kind == "coupon") != (prize.coupon_template_id is not None)
    )
    return found


def _raise_if_any(found: list[tuple[str, str]]) -> None:
    if found:
        (field, message), *more = found
        raise InvalidCampaign(field, message, more=more)


async def _check_references(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: CampaignIn) -> None:
    """Products, batches, segments, coupon templates and tiers named by the rules must be the brand's
    own: ids are never a way across tenants, and a misspelt tier would silently never apply."""
    await lock_definitions(conn, brand_id)  # what it names cannot be deleted meanwhile
    reward = data.points_reward or PointsReward()
    if data.coupon_template_id is not None:
        await _check_templates(conn, brand_id, "coupon_template_id", {data.coupon_template_id})
    for i, prize in enumerate(data.prizes):
        if prize.coupon_template_id is not None:
            await _check_templates(
                conn, brand_id, f"prizes[{i}].coupon_template_id", {prize.coupon_template_id}
            )
    for field, products in (
        ("eligibility.product_ids", set(data.eligibility.product_ids)),
        ("points_reward.per_product", set(reward.per_product)),
    ):
        if products and await count_brand_products(conn, brand_id, products) != len(products):
            raise InvalidCampaign(field, "an unknown product is named")
    checks = [
        ("count_brand_batches", "eligibility.batch_ids", set(data.eligibility.batch_ids), "batch"),
        ("count_brand_segments", "eligibility.segment_ids", set(data.eligibility.segment_ids), "segment"),
    ]
    for query, field, ids, kind in checks:
        if not ids:
            continue
        count = await fetch_one(conn, QUERIES[query], {"brand_id": brand_id, "ids": list(ids)}, _Count)
        if count is None or count.n != len(ids):
            raise InvalidCampaign(field, f"an unknown {kind} is named")
    await _check_tiers(conn, brand_id, data, reward)


async def _check_tiers(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, data: CampaignIn, reward: PointsReward
) -> None:
    named_tiers = [
        ("eligibility.member_tiers", set(data.eligibility.member_tiers)),
        ("points_reward.tier_multipliers_pct", set(reward.tier_multipliers_pct)),
    ]
    if any(names for _, names in named_tiers):
        cur = await conn.execute(QUERIES["brand_tier_names"], {"brand_id": brand_id})
        known = {row[0] for row in await cur.fetchall()}
        for field, names in named_tiers:
            if unknown := sorted(names - known):
                raise InvalidCampaign(
                    field, f"not a tier of the brand: {', '.join(unknown)} (see /v1/member-tiers)"
                )


async def _check_templates(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, field: str, templates: set[uuid.UUID]
) -> None:
    if await coupons.count_brand_templates(conn, brand_id, templates) != len(templates):
        raise InvalidCampaign(field, "an unknown coupon template is named")


async def _check_overlap(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, campaign_id: uuid.UUID, data: CampaignIn
) -> None:
    """A campaign going (or staying) live must not tie with another for the same scans."""
    rivals = await fetch_all(
        conn,
        QUERIES["rivals"],
        {
            "brand_id": brand_id,
            "campaign_id": campaign_id,
            "priority": data.priority,
            "stackable": data.stackable,
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
        },
        _Rival,
    )
    for rival in rivals:
        if _may_reward_the_same_scan(data.eligibility, rival.eligibility):
            raise CampaignOverlap(rival_id=rival.id, rival_name=rival.name)


def _may_reward_the_same_scan(a: Eligibility, b: Eligibility) -> bool:
    """Whether some scan could meet both rule sets (an empty list allows everything)."""
    for mine, theirs in ((a.product_ids, b.product_ids), (a.batch_ids, b.batch_ids)):
        if mine and theirs and not set(mine) & set(theirs):
            return False
    if a.regions and b.regions:
        # A country holds its provinces: ["CN"] meets ["CN-ZJ"].
        meet = any(regions.within(r, b.regions) for r in a.regions) or any(
            regions.within(r, a.regions) for r in b.regions
        )
        if not meet:
            return False
    return {a.members, b.members} != {"new", "existing"}


def _params(data: CampaignIn) -> dict[str, Any]:
    return {
        "name": data.name,
        "starts_at": data.starts_at,
        "ends_at": data.ends_at,
        "time_zone": data.time_zone,
        "budget_cents": data.budget_cents,
        "daily_budget_cents": data.daily_budget_cents,
        "member_daily_cap": data.member_daily_cap,
        "member_campaign_cap": data.member_campaign_cap,
        "no_prize_weight": data.no_prize_weight,
        "eligibility": Jsonb(msgspec.to_builtins(data.eligibility)),
        "points_reward": None
        if data.points_reward is None
        else Jsonb(msgspec.to_builtins(data.points_reward)),
        "priority": data.priority,
        "stackable": data.stackable,
        "coupon_template_id": data.coupon_template_id,
    }


async def validate_campaign(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: CampaignIn) -> None:
    """Every check a new campaign must pass, without saving it (the console checks as the marketer types)."""
    found = check_rules(data)
    if data.kind == "lucky_draw" and not data.prizes:
        found.append(("prizes", "a lucky draw needs at least one prize"))
    _raise_if_any(found)
    await _check_references(conn, brand_id, data)


async def create_campaign(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, data: CampaignIn
) -> Campaign:
    """Save a draft after checking every rule; a lucky draw's prize pool is saved with it."""
    await validate_campaign(conn, brand_id, data)
    cur = await conn.execute(
        QUERIES["insert_campaign"], {"brand_id": brand_id, "kind": data.kind, **_params(data)}
    )
    row = await cur.fetchone()
    assert row is not None
    campaign_id: uuid.UUID = row[0]
    for prize in data.prizes:
        await conn.execute(
            draws.QUERIES["insert_prize"], {"campaign_id": campaign_id, **msgspec.structs.asdict(prize)}
        )
    campaign = await get_campaign(conn, brand_id, campaign_id)
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="campaign.create",
        object_type="campaign",
        object_id=campaign_id,
        after=campaign,
    )
    return campaign


async def get_campaign(conn: AsyncConnection[Any], brand_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    campaign = await fetch_one(
        conn, QUERIES["get_campaign"], {"brand_id": brand_id, "campaign_id": campaign_id}, Campaign
    )
    if campaign is None:
        raise CampaignNotFound("campaign", campaign_id)
    return campaign


async def find_campaign_by_name(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, name: str
) -> Campaign | None:
    """The brand's oldest campaign of that name, if any (for seeds that must not create it twice)."""
    cur = await conn.execute(QUERIES["campaign_id_by_name"], {"brand_id": brand_id, "name": name})
    row = await cur.fetchone()
    return None if row is None else await get_campaign(conn, brand_id, row[0])


async def list_campaigns(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    status: CampaignStatus | None = None,
) -> list[Campaign]:
    return await fetch_all(
        conn,
        QUERIES["list_campaigns"],
        {"brand_id": brand_id, "after": after, "limit": limit, "status": status},
        Campaign,
    )


async def _lock(conn: AsyncConnection[Any], brand_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign:
    cur = await conn.execute(QUERIES["lock_campaign"], {"brand_id": brand_id, "campaign_id": campaign_id})
    if await cur.fetchone() is None:
        raise CampaignNotFound("campaign", campaign_id)
    return await get_campaign(conn, brand_id, campaign_id)


def _as_input(campaign: Campaign) -> CampaignIn:
    """The editable settings of a saved campaign, so a patch is checked by the same rules as a create."""
    return CampaignIn(
        name=campaign.name,
        kind=campaign.kind,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        time_zone=campaign.time_zone,
        budget_cents=campaign.budget_cents,
        daily_budget_cents=campaign.daily_budget_cents,
        member_daily_cap=campaign.member_daily_cap,
        member_campaign_cap=campaign.member_campaign_cap,
        priority=campaign.priority,
        stackable=campaign.stackable,
        eligibility=campaign.eligibility,
        points_reward=campaign.points_reward,
        coupon_template_id=campaign.coupon_template_id,
        no_prize_weight=campaign.no_prize_weight,
    )


async def update_campaign(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    patch: CampaignPatch,
) -> Campaign:
    """Edit a draft freely; a live campaign only with `live_change`; an ended campaign never."""
    before = await _lock(conn, brand_id, campaign_id)
    changes = {
        k: v
        for k, v in msgspec.structs.asdict(patch).items()
        if v is not msgspec.UNSET and k != "live_change"
    }
    _check_may_change(before, changes, confirmed=patch.live_change)
    live = before.status in LIVE_STATUSES
    merged = msgspec.structs.replace(_as_input(before), **changes)
    found = check_rules(merged)
    weights = sum(p.weight for p in (merged.prizes if "prizes" in changes else before.prizes))
    if merged.kind == "lucky_draw" and weights + merged.no_prize_weight == 0:
        found.append(("no_prize_weight", "the weights of the prizes and of 'no prize' sum to zero"))
    if merged.kind == "lucky_draw" and "prizes" in changes and not merged.prizes:
        found.append(("prizes", "a lucky draw needs at least one prize"))
    _raise_if_any(found)
    await _check_references(conn, brand_id, merged)
    if live:
        await _check_overlap(conn, brand_id, campaign_id, merged)
    try:
        async with conn.transaction():
            await conn.execute(
                QUERIES["update_campaign"],
                {"brand_id": brand_id, "campaign_id": campaign_id, **_params(merged)},
            )
            if "prizes" in changes:
                await _replace_draft_prizes(conn, campaign_id, merged.prizes)
            if _has_member_cap(merged) and not _has_member_cap(before):
                await conn.execute(QUERIES["forget_member_wins"], {"campaign_id": campaign_id})
                await conn.execute(QUERIES["count_member_wins"], {"campaign_id": campaign_id})
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name == "campaigns_within_budget":
            raise InvalidCampaign("budget_cents", "the budget is below what is already spent") from None
        raise
    after = await get_campaign(conn, brand_id, campaign_id)
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="campaign.live_change" if live else "campaign.update",
        object_type="campaign",
        object_id=campaign_id,
        before=before,
        after=after,
    )
    return after


def _has_member_cap(campaign: Campaign | CampaignIn) -> bool:
    """Whether awards must count each member's wins (`member_wins`): only caps read those counts."""
    return campaign.member_daily_cap is not None or campaign.member_campaign_cap is not None


def _check_may_change(before: Campaign, changes: dict[str, Any], *, confirmed: bool) -> None:
    """An ended campaign never changes; a live one only when confirmed, and never its draw's odds."""
    if before.status == "ended":
        raise CampaignLocked("status", "an ended campaign cannot be changed")
    if before.status not in LIVE_STATUSES:
        return
    if not confirmed:
        raise LiveChangeNotConfirmed(before.status)
    # Outcomes are recomputed from the seed and the weights: changing a weight or a prize after the seed
    # is committed would make earlier draws fail verification.
    if (
        before.kind == "lucky_draw"
        and changes.get("no_prize_weight", before.no_prize_weight) != before.no_prize_weight
    ):
        raise CampaignLocked("no_prize_weight", "the draw's weights are fixed once its seed is committed")
    if "prizes" in changes:
        raise CampaignLocked("prizes", "a live draw's prizes are fixed; top up a prize's stock instead")


async def _replace_draft_prizes(
    conn: AsyncConnection[Any], campaign_id: uuid.UUID, prizes: Sequence[draws.PrizeIn]
) -> None:
    await conn.execute(draws.QUERIES["delete_draft_prizes"], {"campaign_id": campaign_id})
    for prize in prizes:
        await conn.execute(
            draws.QUERIES["insert_prize"], {"campaign_id": campaign_id, **msgspec.structs.asdict(prize)}
        )


async def transition(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    action: Action,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> Campaign:
    """Move the campaign one step along its lifecycle; a draw commits its seed, or reveals it at the end."""
    before = await _lock(conn, brand_id, campaign_id)
    from_statuses, to_status = TRANSITIONS[action]
    if before.status not in from_statuses:
        raise InvalidTransition(action=action, status=before.status)
    if to_status in {"scheduled", "active"}:
        if before.ends_at <= now:
            raise InvalidCampaign("ends_at", "the campaign's end is already past")
        if before.status == "draft":
            # Leaving the draft is the one check needed: live and paused campaigns are all rivals to
            # each other, so a pair that passed here stays apart (edits of live ones are checked too).
            await _check_overlap(conn, brand_id, campaign_id, _as_input(before))
    seed_sealed = seed_hash = None
    if before.kind == "lucky_draw" and before.seed_hash is None:
        # The first key is the current one (settings.all_master_keys): new seeds are sealed under it.
        seed_sealed, seed_hash = draws.new_seed(brand_id, master_keys[0])
    cur = await conn.execute(
        QUERIES["transition_campaign"],
        {
            "brand_id": brand_id,
            "campaign_id": campaign_id,
            "to_status": to_status,
            "from_statuses": list(from_statuses),
            "seed_sealed": seed_sealed,
            "seed_hash": seed_hash,
        },
    )
    assert await cur.fetchone() is not None  # the row is locked: its status cannot have moved
    if to_status == "ended" and before.kind == "lucky_draw":
        await draws.reveal_seed(conn, campaign_id, master_keys)
    after = await get_campaign(conn, brand_id, campaign_id)
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action=f"campaign.{action}",
        object_type="campaign",
        object_id=campaign_id,
        before={"status": before.status},
        after={"status": after.status, "seed_hash": after.seed_hash},
    )
    return after


async def top_up_prize(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    prize_id: uuid.UUID,
    data: TopUpIn,
) -> draws.Prize:
    """Add stock to a prize of a campaign that has not ended; the budget still caps what is awarded."""
    campaign = await _lock(conn, brand_id, campaign_id)
    if campaign.status == "ended":
        raise CampaignLocked("status", "an ended campaign's prizes cannot be topped up")
    prize = await fetch_one(
        conn,
        QUERIES["top_up_prize"],
        {"brand_id": brand_id, "campaign_id": campaign_id, "prize_id": prize_id, "add": data.add},
        draws.Prize,
    )
    if prize is None:
        raise CampaignNotFound("prize", prize_id)
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="campaign.prize_top_up",
        object_type="prize",
        object_id=prize_id,
        after={"campaign_id": campaign_id, "added": data.add, "stock": prize.stock},
    )
    return prize


SCHEDULE_ACTOR = "system:schedule"


async def advance_schedules(
    conn: AsyncConnection[Any], *, master_keys: Sequence[bytes], now: dt.datetime
) -> list[tuple[uuid.UUID, Action]]:
    """Start scheduled campaigns whose time came and end those whose time is up; audited like a person's step.

    Every worker runs this each second; the row lock in `transition` lets one of them take each step
    and the others find it already taken. Rewards never wait for it: the award function checks the
    schedule itself, so a campaign stops rewarding at `ends_at` to the microsecond.
    """
    cur = await conn.execute(QUERIES["due_transitions"], {"now": now})
    taken: list[tuple[uuid.UUID, Action]] = []
    for brand_id, campaign_id, action in await cur.fetchall():
        try:
            async with conn.transaction():
                await transition(
                    conn,
                    actor=SCHEDULE_ACTOR,
                    brand_id=brand_id,
                    campaign_id=campaign_id,
                    action=action,
                    master_keys=master_keys,
                    now=now,
                )
        except (InvalidTransition, InvalidCampaign):
            continue  # another worker took the step first
        taken.append((campaign_id, action))
    return taken
