"""The console's member work beside search and a member's page: finance's points approvals and the
membership KPIs (of the brand or of one segment).

Decisions are calls to the JSON API from the page (finance only, never on one's own request).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, Response, get
from psycopg import AsyncConnection

from campaigns.members import adjustments, kpis, segments
from service.guards import brand_of, principal_from, roles
from service.models import Role
from service.routes import member_admin
from service.routes.console_common import (
    CHINA,
    FormDay,
    FormId,
    day_range,
    form_day,
    form_uuid,
    render,
    texts,
    who,
)

APPROVAL_READERS = (Role.FINANCE, Role.BRAND_ADMIN, Role.AUDITOR)
LISTED = 200
DEFAULT_DAYS = 30


@get("/console/approvals", opt=roles(*APPROVAL_READERS), include_in_schema=False)
async def approvals_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Points adjustments above the brand's threshold, waiting for finance (and the latest decided)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    pending = await adjustments.list_requests(db, brand_id, status="pending", after=None, limit=LISTED)
    return render(
        request,
        "console_approvals.html",
        title=texts(request)["approvals_nav"],
        user=await who(db, principal),
        pending=pending,
        threshold=await adjustments.approval_threshold(db, brand_id),
        may_decide=principal.role is Role.FINANCE,
        me=principal.actor,
    )


@get("/console/kpis", opt=roles(*member_admin.READERS), include_in_schema=False)
async def kpis_page(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    since: FormDay | None = None,
    until: FormDay | None = None,
    segment_id: FormId | None = None,
) -> Response[str]:
    """The membership KPIs over whole days in China's time (the last 30 by default), with their formulas."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    segment = form_uuid("segment_id", segment_id)
    today = dt.datetime.now(CHINA).date()
    last = form_day("until", until) or today
    first = form_day("since", since) or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    words = texts(request)
    figures = None
    # Days that end before they start have no figures: the page says so beside the filter instead.
    if first <= last:
        range_from, range_to = day_range(first, last)
        assert range_from is not None
        assert range_to is not None
        figures = await kpis.kpis(
            db,
            brand_id,
            range_from=range_from,
            range_to=range_to,
            now=dt.datetime.now(dt.UTC),
            segment_id=segment,
        )
    return render(
        request,
        "console_kpis.html",
        title=words["kpis_nav"],
        user=await who(db, principal),
        kpis=figures,
        range_error=words["reversed_range"] if figures is None else None,
        segments=await segments.list_all(db, brand_id),
        shown={"since": first.isoformat(), "until": last.isoformat(), "segment_id": str(segment or "")},
    )


PAGES = [approvals_page, kpis_page]
