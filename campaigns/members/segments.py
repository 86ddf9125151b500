"""Segments: saved, validated filters over members, with a live count and a masked export.

A filter is data (a msgspec Struct), never SQL: one fixed query takes every condition as a parameter,
and a condition left null drops out when PostgreSQL plans the query with the actual values.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Annotated, Any, LiteralString

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from antifraud.regions import is_region
from campaigns.members import profiles, tiers
from campaigns.members.errors import InvalidMemberInput, LimitReached, NameTaken, ObjectNotFound, SegmentInUse
from codegen.products import count_brand_products
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries
from service.spreadsheets import safe_cell

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "segments.sql")
MAX_SEGMENTS = 500  # a brand's segments are listed whole
# A filter's query: the base and the conditions its parameters set, every part a literal shipped in
# the package, never input (hence the noqa on the compositions below).
CONDITIONS: tuple[str, ...] = tuple(
    name.removeprefix("where_") for name in QUERIES if name.startswith("where_")
)


def members_query(params: dict[str, Any]) -> LiteralString:
    parts = [QUERIES["segment_members"]]
    for name in CONDITIONS:
        value = params.get(name)
        if value is None:
            continue
        parts.append(QUERIES[f"stats_{name}"] if _needs_stats(name, value) else QUERIES[f"where_{name}"])
    return "\n  AND ".join(parts)


def _needs_stats(name: str, value: Any) -> bool:
    """True when a member without statistics (tier 0, 'new', no scans, no points) fails the condition."""
    match name:
        case "tiers":
            return 0 not in value
        case "lifecycle":
            return "new" not in value
        case "scans_min" | "points_earned_min" | "points_spent_min" | "points_balance_min":
            return bool(value > 0)
    return False


def count_query(params: dict[str, Any]) -> LiteralString:
    return "SELECT count(*) AS members FROM (" + members_query(params) + ") found"  # noqa: S608


def page_query(params: dict[str, Any]) -> LiteralString:
    return members_query(params) + "\nORDER BY m.id LIMIT %(limit)s"


def memberships_query(params: dict[str, Any]) -> LiteralString:
    return (
        "INSERT INTO segment_memberships (segment_id, member_id) SELECT %(segment_id)s, id FROM ("  # noqa: S608
        + members_query(params)
        + ") f ON CONFLICT DO NOTHING"
    )


def scope_query(params: dict[str, Any]) -> LiteralString:
    return "INSERT INTO segment_scope (id) SELECT id FROM (" + members_query(params) + ") f"  # noqa: S608


Names = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=40)]], msgspec.Meta(min_length=1, max_length=50)
]
Count = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Days = Annotated[int, msgspec.Meta(ge=1, le=3650)]
Points = Annotated[int, msgspec.Meta(ge=0)]


class SegmentFilter(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """All conditions given must hold. Unknown fields are refused (a typo must not widen a segment)."""

    tiers: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=20)]], msgspec.Meta(min_length=1)] | None = (
        None
    )
    lifecycle: Annotated[list[profiles.Lifecycle], msgspec.Meta(min_length=1)] | None = None
    # Provinces (CN-ZJ) or whole countries (CN): the member's stated region, else its last scan's.
    regions: Annotated[list[str], msgspec.Meta(min_length=1, max_length=100)] | None = None
    enrolled: bool | None = None
    consent_marketing: bool | None = None
    scans_min: Count | None = None
    scans_max: Count | None = None
    # Recency: scanned within the last N days / not scanned for N days.
    scanned_within_days: Days | None = None
    idle_days: Days | None = None
    points_earned_min: Points | None = None
    points_balance_min: Points | None = None
    points_spent_min: Points | None = None
    products_any: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=100)] | None = None
    # Custom attributes, matched exactly: {"store": "Hangzhou West Lake"}.
    attributes: dict[profiles.AttributeName, str | int | float | bool] | None = None
    tags_all: Names | None = None
    tags_any: Names | None = None
    tags_none: Names | None = None


class SegmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    filter: SegmentFilter


class Segment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    filter: SegmentFilter
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentCount(msgspec.Struct, frozen=True):
    members: int
    counted_at: dt.datetime


class SegmentMember(msgspec.Struct, frozen=True):
    id: uuid.UUID
    phone_last4: str | None
    enrolled_at: dt.datetime | None
    created_at: dt.datetime
    region: str | None
    tier_rank: int
    lifecycle: str
    scans: int
    last_scan_at: dt.datetime | None
    points_balance: int
    points_earned: int


class _Count(msgspec.Struct, frozen=True):
    members: int


class _Tag(msgspec.Struct, frozen=True):
    id: int
    name: str


async def _check_references(conn: AsyncConnection[Any], brand_id: uuid.UUID, flt: SegmentFilter) -> None:
    """Tiers, products and attributes the filter names exist in the brand, and each attribute's value is
    one the attribute can hold (the rules of a member edit): a value no member can have is an error."""
    if flt.tiers:
        # Rank 0 is the entry tier even before a brand defines a ladder.
        ranks = {0} | {t.rank for t in await tiers.list_tiers(conn, brand_id)}
        unknown = sorted(set(flt.tiers) - ranks)
        if unknown:
            raise InvalidMemberInput("filter.tiers", f"no tier of rank {', '.join(map(str, unknown))}")
    products = set(flt.products_any or [])
    if products and await count_brand_products(conn, brand_id, products) != len(products):
        raise InvalidMemberInput("filter.products_any", "an unknown product is named")
    if flt.attributes:
        defs = {d.name: d for d in await profiles.attribute_defs(conn, brand_id)}
        for name, value in flt.attributes.items():
            profiles.check_attribute(defs, name, value, prefix="filter.")


async def validate(conn: AsyncConnection[Any], brand_id: uuid.UUID, flt: SegmentFilter) -> dict[str, Any]:
    """The query parameters of a filter; names that do not exist are field errors, not empty results."""
    for region in flt.regions or []:
        if not is_region(region):
            raise InvalidMemberInput("filter.regions", f"{region!r} is not an ISO 3166 code")
    if flt.scans_min is not None and flt.scans_max is not None and flt.scans_min > flt.scans_max:
        raise InvalidMemberInput("filter.scans_max", "smaller than scans_min")
    await _check_references(conn, brand_id, flt)
    tag_ids: dict[str, list[int] | None] = {}
    for field in ("tags_all", "tags_any", "tags_none"):
        names: list[str] | None = getattr(flt, field)
        tag_ids[field] = None if names is None else await _tag_ids(conn, brand_id, names, field)
    now = dt.datetime.now(dt.UTC)
    return {
        "brand_id": brand_id,
        "after": None,
        "tiers": flt.tiers,
        "lifecycle": flt.lifecycle,
        "regions": flt.regions,
        "enrolled": flt.enrolled,
        "consent_marketing": flt.consent_marketing,
        "scans_min": flt.scans_min,
        "scans_max": flt.scans_max,
        "scanned_since": None
        if flt.scanned_within_days is None
        else now - dt.timedelta(days=flt.scanned_within_days),
        "idle_since": None if flt.idle_days is None else now - dt.timedelta(days=flt.idle_days),
        "points_earned_min": flt.points_earned_min,
        "points_balance_min": flt.points_balance_min,
        "points_spent_min": flt.points_spent_min,
        "products_any": flt.products_any,
        "attributes": None if flt.attributes is None else Jsonb(flt.attributes),
        **tag_ids,
    }


async def count(conn: AsyncConnection[Any], brand_id: uuid.UUID, flt: SegmentFilter) -> SegmentCount:
    params = await validate(conn, brand_id, flt)
    await conn.execute(QUERIES["large_sort_memory"])
    found = await fetch_one(conn, count_query(params), params, _Count)
    assert found is not None
    return SegmentCount(found.members, dt.datetime.now(dt.UTC))


async def members_page(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    flt: SegmentFilter,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> list[SegmentMember]:
    params = {**await validate(conn, brand_id, flt), "after": after, "limit": limit}
    await conn.execute(QUERIES["large_sort_memory"])
    return await fetch_all(conn, page_query(params), params, SegmentMember)


async def fill_scope(conn: AsyncConnection[Any], brand_id: uuid.UUID, flt: SegmentFilter) -> None:
    """Copy the segment's members into the transaction's temporary table `segment_scope`."""
    params = await validate(conn, brand_id, flt)
    await conn.execute(QUERIES["large_sort_memory"])
    await conn.execute(scope_query(params), params)


def members_csv(rows: list[SegmentMember], *, header: bool) -> bytes:
    """Phones masked to their last four digits: an export leaves the building."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(
            ["member_id", "phone", "region", "tier", "lifecycle", "scans", "last_scan_at", "points_balance"]
        )
    for r in rows:
        writer.writerow(
            [
                r.id,
                "" if r.phone_last4 is None else f"*******{r.phone_last4}",
                safe_cell(r.region or ""),
                r.tier_rank,
                r.lifecycle,
                r.scans,
                "" if r.last_scan_at is None else r.last_scan_at.isoformat(),
                r.points_balance,
            ]
        )
    return out.getvalue().encode()


async def create(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: SegmentIn, *, actor: str) -> Segment:
    await lock_definitions(conn, brand_id)  # what it names cannot be deleted meanwhile
    await validate(conn, brand_id, data.filter)
    cur = await conn.execute(QUERIES["count_segments"], {"brand_id": brand_id})
    if (await cur.fetchone() or (0,))[0] >= MAX_SEGMENTS:
        raise LimitReached("segments", MAX_SEGMENTS)
    created = await fetch_one(
        conn,
        QUERIES["create_segment"],
        {
            "brand_id": brand_id,
            "name": data.name,
            "filter": Jsonb(msgspec.to_builtins(data.filter)),
            "actor": actor,
        },
        Segment,
    )
    if created is None:
        raise NameTaken("segment", data.name)
    return created


async def update(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, segment_id: uuid.UUID, data: SegmentIn
) -> Segment:
    await lock_definitions(conn, brand_id)  # what it names cannot be deleted meanwhile
    await validate(conn, brand_id, data.filter)
    try:
        updated = await fetch_one(
            conn,
            QUERIES["update_segment"],
            {
                "brand_id": brand_id,
                "segment_id": segment_id,
                "name": data.name,
                "filter": Jsonb(msgspec.to_builtins(data.filter)),
            },
            Segment,
        )
    except psycopg.errors.UniqueViolation:
        raise NameTaken("segment", data.name) from None
    if updated is None:
        raise ObjectNotFound("segment", segment_id)
    return updated


async def get(conn: AsyncConnection[Any], brand_id: uuid.UUID, segment_id: uuid.UUID) -> Segment:
    found = await fetch_one(
        conn, QUERIES["get_segment"], {"brand_id": brand_id, "segment_id": segment_id}, Segment
    )
    if found is None:
        raise ObjectNotFound("segment", segment_id)
    return found


async def list_page(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: str | None, limit: int
) -> list[Segment]:
    """A page of the brand's segments by name, after the name `after`."""
    params = {"brand_id": brand_id, "after": after, "limit": limit}
    return await fetch_all(conn, QUERIES["list_segments"], params, Segment)


async def list_all(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[Segment]:
    """Every segment of the brand, for the console: at most MAX_SEGMENTS (`create` refuses more); the API
    pages them (`list_page`)."""
    return await list_page(conn, brand_id, after=None, limit=MAX_SEGMENTS)


class _Name(msgspec.Struct, frozen=True):
    name: str


async def delete(conn: AsyncConnection[Any], brand_id: uuid.UUID, segment_id: uuid.UUID) -> None:
    """Refused while a campaign that is not over names it: it would silently reward nobody."""
    await lock_definitions(conn, brand_id)  # its check and a rule naming it cannot pass each other
    named_by = await fetch_all(
        conn, QUERIES["campaigns_using_segment"], {"brand_id": brand_id, "segment_id": segment_id}, _Name
    )
    if named_by:
        raise SegmentInUse(segment_id, [c.name for c in named_by])
    cur = await conn.execute(QUERIES["delete_segment"], {"brand_id": brand_id, "segment_id": segment_id})
    if await cur.fetchone() is None:
        raise ObjectNotFound("segment", segment_id)


class _LiveSegment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    filter: SegmentFilter
    updated_at: dt.datetime
    members_computed_at: dt.datetime | None


async def refresh_memberships(
    conn: AsyncConnection[Any], *, member_ids: list[uuid.UUID] | str | None, now: dt.datetime
) -> int:
    """Keep `segment_memberships` of the segments live campaigns name: for the touched `member_ids`, or
    in full (None, a new or edited segment). Returns the segments refreshed."""
    live = await fetch_all(conn, QUERIES["live_segments"], {}, _LiveSegment)
    for segment in live:
        computed = segment.members_computed_at
        complete = member_ids is None or computed is None or computed < segment.updated_at
        scope = None if complete else member_ids
        if scope in ([], "{}"):  # touched nobody
            continue
        try:
            params = await validate(conn, segment.brand_id, segment.filter)
        except InvalidMemberInput:
            params = None  # a tag or attribute it names is gone: the segment holds nobody
        await conn.execute(QUERIES["clear_memberships"], {"segment_id": segment.id, "member_ids": scope})
        if params is not None:
            params |= {"segment_id": segment.id, "member_ids": scope}
            await conn.execute(QUERIES["large_sort_memory"])
            await conn.execute(memberships_query(params), params)
        if complete:
            await conn.execute(QUERIES["memberships_computed"], {"segment_id": segment.id, "now": now})
    return len(live)


async def _tag_ids(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, names: list[str], field: str
) -> list[int]:
    found = await fetch_all(conn, QUERIES["tag_ids"], {"brand_id": brand_id, "names": names}, _Tag)
    unknown = sorted(set(names) - {t.name for t in found})
    if unknown:
        raise InvalidMemberInput(f"filter.{field}", f"unknown tags: {', '.join(unknown)}")
    return [t.id for t in found]
