"""Reports for brands and distributors: diversions (grey market), scans by dimension, scan rate per batch.

A diversion is judged when the item is scanned (`scans.diverted`), against the territory it was shipped
under; it is attributed to the distributor that received the item, with the item's case and pallet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from service.cursors import time_cursor
from service.db import fetch_all
from service.queries import load_queries
from service.spreadsheets import safe_cell

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("antifraud.sql", "reports.sql")
DEFAULT_DAYS = 30
MAX_DAYS = 366


class DiversionEvent(msgspec.Struct, frozen=True):
    scan_id: uuid.UUID
    scanned_at: dt.datetime
    distributor_id: uuid.UUID
    distributor_name: str
    territory: list[str]
    region: str
    product_id: uuid.UUID
    product_name: str
    batch_id: uuid.UUID
    lot: str | None
    position: int
    case_sscc: str | None
    pallet_sscc: str | None
    # In China, the city when the scan's location or IP placed it (`CN-330200`, antifraud.divisions).
    city: str | None = None


class Count(msgspec.Struct, frozen=True):
    key: str | None
    events: int


class DiversionTotals(msgspec.Struct, frozen=True):
    by_distributor: list[Count]
    by_region: list[Count]
    # Weeks start on Monday, in the report's time zone.
    by_week: list[Count]


class DiversionReport(msgspec.Struct, frozen=True):
    since: dt.datetime
    until: dt.datetime
    totals: DiversionTotals
    # Newest first; pass `next_cursor` as `after` for the next page (null on the last page).
    items: list[DiversionEvent]
    next_cursor: str | None


class ReportFilter(msgspec.Struct, frozen=True, kw_only=True):
    brand_id: uuid.UUID
    since: dt.datetime
    until: dt.datetime
    # A distributor's token sees its own events only, whatever it asks for.
    only_distributor: uuid.UUID | None = None
    distributor_id: uuid.UUID | None = None
    region: str | None = None
    time_zone: str = "Asia/Shanghai"


class _Dimension(msgspec.Struct, frozen=True):
    dimension: str
    key: str | None
    events: int


def _params(found: ReportFilter) -> dict[str, Any]:
    return msgspec.structs.asdict(found)


async def events(
    conn: AsyncConnection[Any],
    found: ReportFilter,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[DiversionEvent]:
    params = {
        **_params(found),
        "before_at": before[0] if before else None,
        "before_id": before[1] if before else None,
        "limit": limit,
    }
    return await fetch_all(conn, QUERIES["diversion_events"], params, DiversionEvent)


async def totals(conn: AsyncConnection[Any], found: ReportFilter) -> DiversionTotals:
    rows = await fetch_all(conn, QUERIES["diversion_totals"], _params(found), _Dimension)

    def of(dimension: str) -> list[Count]:
        return [Count(row.key, row.events) for row in rows if row.dimension == dimension]

    return DiversionTotals(by_distributor=of("distributor"), by_region=of("region"), by_week=of("week"))


async def report(
    conn: AsyncConnection[Any],
    found: ReportFilter,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> DiversionReport:
    # One more than the page: a page that ends on the last event has no next page to point at.
    found_and_one = await events(conn, found, before=before, limit=limit + 1)
    page = found_and_one[:limit]
    last = page[-1] if len(found_and_one) > limit else None
    return DiversionReport(
        since=found.since,
        until=found.until,
        totals=await totals(conn, found),
        items=page,
        next_cursor=None if last is None else cursor_of(last),
    )


def cursor_of(event: DiversionEvent) -> str:
    return time_cursor(event.scanned_at, event.scan_id)


CSV_COLUMNS = [
    "scanned_at",
    "distributor",
    "territory",
    "region",
    "product",
    "lot",
    "batch_id",
    "position",
    "case_sscc",
    "pallet_sscc",
    "scan_id",
    "city",
]


def to_csv(found: list[DiversionEvent], *, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for e in found:
        writer.writerow(
            [
                e.scanned_at.isoformat(),
                safe_cell(e.distributor_name),
                " ".join(e.territory),
                e.region,
                safe_cell(e.product_name),
                safe_cell(e.lot or ""),
                e.batch_id,
                e.position,
                e.case_sscc or "",
                e.pallet_sscc or "",
                e.scan_id,
                e.city or "",
            ]
        )
    return out.getvalue().encode()


ScanDimension = Literal["region", "product", "batch", "week", "distributor"]


class ScanGroup(msgspec.Struct, frozen=True):
    # A region code, product id, batch id, distributor id or the Monday of a week ("unknown"/"none"
    # when scans had no region or no distributor).
    key: str
    # The distributor's or product's name (null for the other dimensions and for "none").
    name: str | None
    scans: int
    first_scans: int
    repeat_scans: int
    suspect_clone: int
    not_activated: int
    diverted: int
    # Forged codes claiming the brand: counted by region or by week only (they name no product).
    counterfeit: int


class BatchScanRate(msgspec.Struct, frozen=True):
    batch_id: uuid.UUID
    product_name: str
    lot: str | None
    quantity: int
    activation: str
    activated: int
    scanned: int
    # scanned / activated (null before anything is activated).
    rate: float | None = None


async def scans_by(
    conn: AsyncConnection[Any], found: ReportFilter, *, by: ScanDimension, limit: int
) -> list[ScanGroup]:
    params = {**_params(found), "by": by, "limit": limit}
    return await fetch_all(conn, QUERIES["scans_by"], params, ScanGroup)


async def batch_scan_rates(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[BatchScanRate]:
    rows = await fetch_all(
        conn,
        QUERIES["batch_scan_rates"],
        {"brand_id": brand_id, "after": after, "limit": limit},
        BatchScanRate,
    )
    return [msgspec.structs.replace(r, rate=r.scanned / r.activated if r.activated else None) for r in rows]


# Dimensions whose key is an id: their CSV has a name column beside it (as the diversion CSV names them).
NAMED_DIMENSIONS = frozenset({"distributor", "product"})


def groups_csv(groups: list[ScanGroup], *, by: str) -> bytes:
    named = by in NAMED_DIMENSIONS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    counts = [f for f in ScanGroup.__struct_fields__ if f not in {"key", "name"}]
    writer.writerow([by, *([f"{by}_name"] if named else []), *counts])
    for g in groups:
        writer.writerow(
            [
                g.key,
                *([safe_cell(g.name or "")] if named else []),
                g.scans,
                g.first_scans,
                g.repeat_scans,
                g.suspect_clone,
                g.not_activated,
                g.diverted,
                g.counterfeit,
            ]
        )
    return out.getvalue().encode()
