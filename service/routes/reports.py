"""Reports over HTTP: diversions, scans by dimension, scan rate per batch; distributors see their own."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Request, Response, Router, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud import regions, reports
from antifraud.reports import DiversionReport, ReportFilter
from service import audit
from service.cursors import parse_time_cursor
from service.errors import InvalidField
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Principal, Role
from service.routes.admin import Cursor, Limit, page
from service.settings import Settings
from service.state import AppState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

READERS = (Role.BRAND_ADMIN, Role.OPERATIONS, Role.MARKETER, Role.AUDITOR, Role.DISTRIBUTOR)
MAX_CSV_ROWS = 50_000


@get("/reports/diversion", opt=roles(*READERS), tags=["reports"], response_model=None)
async def diversion(
    request: Request[Any, Any, Any],
    report_db: AsyncConnection[Any],
    settings: Settings,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    distributor_id: uuid.UUID | None = None,
    region: Annotated[str | None, Parameter(max_length=10)] = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the public query parameter's name
    after: Cursor = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_CSV_ROWS)] = 100,
) -> DiversionReport | Response[bytes]:
    """Scans of shipped items outside their distributor's territory, newest first.

    `since`/`until` (default: the last 30 days, at most 366) bound the scan time. JSON pages hold at
    most `ONECODE_MAX_PAGE_SIZE` events (`next_cursor` goes back as `after`) with totals by distributor,
    region and week; `format=csv` writes up to 50,000 rows a file, the next file named by a
    `Link: rel="next"` header.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    try:
        before = parse_time_cursor(after) if after else None
    except ValueError:
        raise InvalidField("after", "not a cursor from this report") from None
    scope = report_scope(principal, since, until, distributor_id=distributor_id, region=region)
    if format == "json":
        return await reports.report(report_db, scope, before=before, limit=min(limit, settings.max_page_size))
    found_and_one = await reports.events(report_db, scope, before=before, limit=limit + 1)
    found = found_and_one[:limit]
    async with _primary(request, report_db) as db:
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_id,
            action="report.diversion_export",
            object_type="report",
            object_id=None,
            after={
                "rows": len(found),
                "since": scope.since,
                "until": scope.until,
                "distributor_id": distributor_id,
            },
        )
    headers = {"content-disposition": 'attachment; filename="diversion.csv"'}
    if len(found_and_one) > limit:  # a file that ends on the last event has no next file
        query = {**dict(request.query_params), "after": reports.cursor_of(found[-1])}
        headers["link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(reports.to_csv(found, header=after is None), media_type="text/csv", headers=headers)


@contextlib.asynccontextmanager
async def _primary(
    request: Request[Any, Any, Any], report_db: AsyncConnection[Any]
) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection that may write (the audit of an export): the report's own unless it is a replica's,
    so that a request never waits for a second connection of the pool it already holds one of."""
    state: AppState = request.app.state.onecode
    if state.report_pool is state.pool:
        yield report_db
    else:
        async with state.pool.connection() as conn:
            yield conn


def report_scope(
    principal: Principal,
    since: dt.datetime | None,
    until: dt.datetime | None,
    *,
    distributor_id: uuid.UUID | None = None,
    region: str | None = None,
) -> ReportFilter:
    """The report's period (default the last 30 days, at most 366) and the caller's scope."""
    until = until or dt.datetime.now(dt.UTC)
    since = since or until - dt.timedelta(days=reports.DEFAULT_DAYS)
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidField("since", "give times with their UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    if not dt.timedelta(0) < until - since <= dt.timedelta(days=reports.MAX_DAYS):
        raise InvalidField("since", f"the range must be positive and at most {reports.MAX_DAYS} days")
    if region is not None:
        region = region.upper()  # as scans record it: CN-GD
        if not regions.is_region(region):
            raise InvalidField("region", "not an ISO 3166-2 province code such as CN-GD")
    return ReportFilter(
        brand_id=brand_of(principal),
        since=since,
        until=until,
        # A distributor's token sees its own items' scans, whatever it asks for.
        only_distributor=principal.distributor_id if principal.role is Role.DISTRIBUTOR else None,
        distributor_id=distributor_id,
        region=region,
    )


@get("/reports/scans", opt=roles(*READERS), tags=["reports"], response_model=None)
async def scans_report(
    request: Request[Any, Any, Any],
    report_db: AsyncConnection[Any],
    by: reports.ScanDimension = "region",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the public query parameter's name
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> list[reports.ScanGroup] | Response[bytes]:
    """Scans of the period by `region`, `product`, `batch`, `week` or `distributor`, counted by verdict
    (with diversions, and forged codes claiming the brand by region or week): heat maps and charts.

    The `limit` largest groups (weeks: in calendar order; a period holds at most 53).
    """
    principal = principal_from(request)
    scope = report_scope(principal, since, until)
    groups = await reports.scans_by(report_db, scope, by=by, limit=limit)
    if format == "json":
        return groups
    async with _primary(request, report_db) as db:
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_of(principal),
            action="report.scans_export",
            object_type="report",
            object_id=None,
            after={"by": by, "groups": len(groups), "since": scope.since, "until": scope.until},
        )
    headers = {"content-disposition": f'attachment; filename="scans-by-{by}.csv"'}
    return Response(reports.groups_csv(groups, by=by), media_type="text/csv", headers=headers)


@get(
    "/reports/batches",
    opt=roles(Role.BRAND_ADMIN, Role.OPERATIONS, Role.MARKETER, Role.AUDITOR),
    tags=["reports"],
)
async def batches_report(
    request: Request[Any, Any, Any],
    report_db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    """Scan rate per batch: codes scanned at least once / codes activated."""
    limit = min(limit, settings.max_page_size)
    items = await reports.batch_scan_rates(
        report_db, brand_of(principal_from(request)), after=after, limit=limit + 1
    )
    return page(items, limit, lambda b: b.batch_id)


def reports_router() -> Router:
    return Router("/v1", route_handlers=[diversion, scans_report, batches_report], guards=[require_token])
