"""The brand's side of clone detection: its thresholds, and the review list of flagged codes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from antifraud.clones import CloneRules
from codegen.errors import ObjectNotFound
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("antifraud.sql", "review.sql")

FlagStatus = Literal["open", "cleared", "confirmed"]


class FlaggedCode(msgspec.Struct, frozen=True):
    id: int
    key_id: int
    code_index: int
    batch_id: uuid.UUID
    lot: str | None
    position: int
    product_name: str
    score: int
    reasons: list[str]
    suspect_scans: int
    first_flagged_at: dt.datetime
    last_flagged_at: dt.datetime
    status: FlagStatus
    reviewed_by: str | None
    reviewed_at: dt.datetime | None
    scans: int
    case_sscc: str | None
    pallet_sscc: str | None
    # The printed serial, to open the item's story (GET /v1/codes/{serial}/trace); from the registry.
    serial: str | None = None


class FlaggedCase(msgspec.Struct, frozen=True):
    case_sscc: str
    pallet_sscc: str | None
    batch_id: uuid.UUID
    lot: str | None
    product_name: str
    flagged_codes: int
    max_score: int
    first_flagged_at: dt.datetime
    last_flagged_at: dt.datetime


class ReviewIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # `cleared`: a false alarm (the code's clone signals start over); `confirmed`: a copied code.
    status: Literal["cleared", "confirmed"]


class Reviewed(msgspec.Struct, frozen=True):
    id: int
    key_id: int
    code_index: int
    status: FlagStatus


async def clone_rules(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> CloneRules:
    found = await fetch_one(conn, QUERIES["get_clone_rules"], {"brand_id": brand_id}, CloneRules)
    return found or CloneRules()


async def save_clone_rules(conn: AsyncConnection[Any], brand_id: uuid.UUID, rules: CloneRules) -> CloneRules:
    saved = await fetch_one(
        conn, QUERIES["save_clone_rules"], {"brand_id": brand_id, **msgspec.structs.asdict(rules)}, CloneRules
    )
    assert saved is not None  # INSERT ... RETURNING always returns the row
    return saved


async def flagged(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, status: FlagStatus, after: int | None, limit: int
) -> list[FlaggedCode]:
    params = {"brand_id": brand_id, "status": status, "after": after, "limit": limit}
    return await fetch_all(conn, QUERIES["flagged_page"], params, FlaggedCode)


async def flagged_cases(conn: AsyncConnection[Any], brand_id: uuid.UUID, *, limit: int) -> list[FlaggedCase]:
    return await fetch_all(
        conn, QUERIES["flagged_cases"], {"brand_id": brand_id, "limit": limit}, FlaggedCase
    )


async def review(
    conn: AsyncConnection[Any],
    *,
    brand_id: uuid.UUID,
    flag_id: int,
    data: ReviewIn,
    actor: str,
    now: dt.datetime,
) -> Reviewed:
    params = {"brand_id": brand_id, "flag_id": flag_id, "status": data.status, "actor": actor, "now": now}
    found = await fetch_one(conn, QUERIES["review_flag"], params, Reviewed)
    if found is None:
        raise ObjectNotFound("flagged code", flag_id)
    return found
