"""Reports over HTTP: anti-diversion, scoped by role (a distributor sees its own events only)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Request, Response, Router, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud import reports
from antifraud.reports import DiversionFilter, DiversionReport
from service import audit
from service.errors import InvalidField
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Role

READERS = (Role.BRAND_ADMIN, Role.OPERATIONS, Role.MARKETER, Role.AUDITOR, Role.DISTRIBUTOR)
MAX_CSV_ROWS = 50_000


@get("/reports/diversion", opt=roles(*READERS), tags=["reports"], response_model=None)
async def diversion(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    distributor_id: uuid.UUID | None = None,
    region: Annotated[str, Parameter(max_length=10)] | None = None,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the public query parameter's name
    after: Annotated[str, Parameter(max_length=100)] | None = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_CSV_ROWS)] = 100,
) -> DiversionReport | Response[bytes]:
    """Scans of shipped items outside their distributor's territory, newest first.

    `since`/`until` (default: the last 30 days, at most 366) bound the scan time. JSON pages hold at
    most 1,000 events (`next_cursor` goes back as `after`) with totals by distributor, region and week;
    `format=csv` writes up to 50,000 rows a file, the next file named by a `Link: rel="next"` header.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    until = until or dt.datetime.now(dt.UTC)
    since = since or until - dt.timedelta(days=reports.DEFAULT_DAYS)
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidField("since", "give times with their UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    if not dt.timedelta(0) < until - since <= dt.timedelta(days=reports.MAX_DAYS):
        raise InvalidField("since", f"the range must be positive and at most {reports.MAX_DAYS} days")
    try:
        before = reports.parse_cursor(after) if after else None
    except ValueError:
        raise InvalidField("after", "not a cursor from this report") from None
    scope = DiversionFilter(
        brand_id=brand_id,
        since=since,
        until=until,
        only_distributor=principal.distributor_id if principal.role is Role.DISTRIBUTOR else None,
        distributor_id=distributor_id,
        region=region,
    )
    if format == "json":
        return await reports.report(db, scope, before=before, limit=min(limit, 1000))
    found = await reports.events(db, scope, before=before, limit=limit)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="report.diversion_export",
        object_type="report",
        object_id=None,
        after={"rows": len(found), "since": since, "until": until, "distributor_id": distributor_id},
    )
    headers = {"content-disposition": 'attachment; filename="diversion.csv"'}
    if len(found) == limit:
        query = {**dict(request.query_params), "after": reports.cursor_of(found[-1])}
        headers["link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    return Response(
        reports.to_csv(found, header=after is None), media_type="text/csv; charset=utf-8", headers=headers
    )


def reports_router() -> Router:
    return Router("/v1", route_handlers=[diversion], guards=[require_token])
