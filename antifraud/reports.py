"""Anti-diversion reports: scans of shipped items outside their distributor's territory (grey market).

A diversion is judged when the item is scanned (`scans.diverted`), against the territory it was shipped
under; it is attributed to the distributor that received the item, with the item's case and pallet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

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


class DiversionFilter(msgspec.Struct, frozen=True, kw_only=True):
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


def _params(found: DiversionFilter) -> dict[str, Any]:
    return msgspec.structs.asdict(found)


async def events(
    conn: AsyncConnection[Any],
    found: DiversionFilter,
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


async def totals(conn: AsyncConnection[Any], found: DiversionFilter) -> DiversionTotals:
    rows = await fetch_all(conn, QUERIES["diversion_totals"], _params(found), _Dimension)

    def of(dimension: str) -> list[Count]:
        return [Count(row.key, row.events) for row in rows if row.dimension == dimension]

    return DiversionTotals(by_distributor=of("distributor"), by_region=of("region"), by_week=of("week"))


async def report(
    conn: AsyncConnection[Any],
    found: DiversionFilter,
    *,
    before: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> DiversionReport:
    page = await events(conn, found, before=before, limit=limit)
    last = page[-1] if len(page) == limit else None
    return DiversionReport(
        since=found.since,
        until=found.until,
        totals=await totals(conn, found),
        items=page,
        next_cursor=None if last is None else cursor_of(last),
    )


def cursor_of(event: DiversionEvent) -> str:
    return f"{event.scanned_at.isoformat()},{event.scan_id}"


def parse_cursor(raw: str) -> tuple[dt.datetime, uuid.UUID]:
    """ValueError when `raw` is not a cursor this report gave."""
    at, _, scan_id = raw.partition(",")
    return dt.datetime.fromisoformat(at), uuid.UUID(scan_id)


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
            ]
        )
    return out.getvalue().encode()
