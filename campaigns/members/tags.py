"""Tags: manual ones staff give and take, and rule tags recomputed from behaviour by the stats refresh."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from psycopg.types.json import Jsonb

from antifraud.regions import is_region
from campaigns.members import recompute
from campaigns.members.errors import (
    InvalidMemberInput,
    LimitReached,
    MemberNotFound,
    NameTaken,
    ObjectNotFound,
    TagInUse,
)
from codegen.products import count_brand_products
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "tags.sql")
# The console lists a brand's tags whole (its pickers), and each rule tag is evaluated for every member
# at every full refresh.
MAX_TAGS = 1000
MAX_RULE_TAGS = 100

TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[^\s/][^/]*$")]


class TagRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every condition given must hold, e.g. `{"min_scans": 3, "within_days": 90, "product_ids": [...]}`
    is "scanned >= 3 items of these products in 90 days".

    Every field is written out, stored and shown, defaults too: a rule read back says which window
    its scans count in, and a later change of the default cannot change what a saved rule means."""

    min_scans: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    within_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 90
    product_ids: Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=100)] | None = None
    min_points_earned: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Lifetime points redeemed: "spent >= 500 points".
    min_points_spent: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # A country or province (ISO 3166): the member's stated region, else where it last scanned.
    region: Annotated[str, msgspec.Meta(min_length=2, max_length=10)] | None = None


class TagIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: TagName
    rule: TagRule | None = None


class Tag(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: Literal["manual", "rule"]
    rule: TagRule | None
    created_at: dt.datetime
    members: int | None = None


class MemberTag(msgspec.Struct, frozen=True):
    member_id: uuid.UUID
    tag: str


class _Id(msgspec.Struct, frozen=True):
    id: uuid.UUID


class _TagCount(msgspec.Struct, frozen=True):
    tags: int
    rule_tags: int


class _Applied(msgspec.Struct, frozen=True):
    added: int
    removed: int


async def create_tag(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: TagIn) -> Tag:
    await lock_definitions(conn, brand_id)  # what it names cannot be deleted meanwhile
    rule = data.rule
    if rule is not None:
        conditions = (rule.min_scans, rule.min_points_earned, rule.min_points_spent, rule.region)
        if all(c is None for c in conditions):
            raise InvalidMemberInput("rule", "give at least one condition")
        if rule.region is not None and not is_region(rule.region):
            raise InvalidMemberInput("rule.region", "not an ISO 3166 country or subdivision code")
        if rule.product_ids is not None and rule.min_scans is None:
            raise InvalidMemberInput("rule.product_ids", "products count only with min_scans")
        products = set(rule.product_ids or [])
        if products and await count_brand_products(conn, brand_id, products) != len(products):
            raise InvalidMemberInput("rule.product_ids", "an unknown product is named")
    held = await fetch_one(conn, QUERIES["count_tags"], {"brand_id": brand_id}, _TagCount)
    assert held is not None
    if held.tags >= MAX_TAGS:
        raise LimitReached("tags", MAX_TAGS)
    if rule is not None and held.rule_tags >= MAX_RULE_TAGS:
        raise LimitReached("rule tags", MAX_RULE_TAGS)
    created = await fetch_one(
        conn,
        QUERIES["create_tag"],
        {
            "brand_id": brand_id,
            "name": data.name,
            "kind": "manual" if rule is None else "rule",
            "rule": None if rule is None else Jsonb(msgspec.to_builtins(rule)),
        },
        Tag,
    )
    if created is None:
        raise NameTaken("tag", data.name)
    if rule is not None:
        await recompute.request(conn, brand_id, f"rule tag {data.name!r} created")
    return created


async def list_page(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: str | None, limit: int
) -> list[Tag]:
    """A page of the brand's tags by name, after the name `after`."""
    return await fetch_all(
        conn, QUERIES["list_tags"], {"brand_id": brand_id, "after": after, "limit": limit}, Tag
    )


async def list_tags(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[Tag]:
    """Every tag of the brand, for the console's pickers: at most MAX_TAGS (`create_tag` refuses more);
    the API pages them (`list_page`)."""
    return await list_page(conn, brand_id, after=None, limit=MAX_TAGS)


async def delete_tag(conn: AsyncConnection[Any], brand_id: uuid.UUID, name: str) -> None:
    await lock_definitions(conn, brand_id)  # its check and a rule naming it cannot pass each other
    cur = await conn.execute(QUERIES["segments_using_tag"], {"brand_id": brand_id, "name": name})
    if segments := [segment for (segment,) in await cur.fetchall()]:
        raise TagInUse(name, segments)
    cur = await conn.execute(QUERIES["delete_tag"], {"brand_id": brand_id, "name": name})
    if await cur.fetchone() is None:
        raise ObjectNotFound("tag", name)
    # As for a new tag: the next refresh recomputes every member, so nothing computed with it outlives it.
    await recompute.request(conn, brand_id, f"tag {name!r} deleted")


async def tag_member(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID, name: str, *, actor: str
) -> MemberTag:
    tag = await _manual_tag(conn, brand_id, name)
    found = await fetch_one(
        conn,
        QUERIES["add_member_tag"],
        {"brand_id": brand_id, "tag_id": tag.id, "member_id": member_id, "actor": actor},
        _Id,
    )
    if found is None:
        raise MemberNotFound(member_id)
    return MemberTag(member_id, tag.name)


async def untag_member(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID, name: str
) -> None:
    tag = await _manual_tag(conn, brand_id, name)
    await conn.execute(
        QUERIES["remove_member_tag"], {"brand_id": brand_id, "tag_id": tag.id, "member_id": member_id}
    )


async def apply_rule_tags(
    conn: AsyncConnection[Any],
    brand_ids: list[uuid.UUID],
    member_ids: list[uuid.UUID] | str | None,
    *,
    now: dt.datetime,
) -> int:
    """Recompute the brands' rule tags for `member_ids` (all members when None); returns rows changed."""
    changed = 0
    for tag in await fetch_all(conn, QUERIES["rule_tags"], {"brand_ids": brand_ids}, _BrandTag):
        rule = tag.rule
        applied = await fetch_one(
            conn,
            QUERIES["apply_rule_tag"],
            {
                "brand_id": tag.brand_id,
                "tag_id": tag.id,
                "member_ids": member_ids,
                "now": now,
                "min_scans": rule.min_scans,
                "within_days": rule.within_days,
                "product_ids": rule.product_ids,
                "min_points_earned": rule.min_points_earned,
                "min_points_spent": rule.min_points_spent,
                "region": rule.region,
            },
            _Applied,
        )
        assert applied is not None
        changed += applied.added + applied.removed
    return changed


class _BrandTag(msgspec.Struct, frozen=True):
    id: int
    brand_id: uuid.UUID
    rule: TagRule


async def _manual_tag(conn: AsyncConnection[Any], brand_id: uuid.UUID, name: str) -> Tag:
    tag = await fetch_one(conn, QUERIES["tag_by_name"], {"brand_id": brand_id, "name": name}, Tag)
    if tag is None:
        raise ObjectNotFound("tag", name)
    if tag.kind == "rule":
        raise InvalidMemberInput("tag", f"{name!r} is a rule tag: it is computed, not given")
    return tag
