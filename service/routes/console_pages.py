"""The web console's pages, server-rendered (Jinja2, autoescaped) from templates in `service/pages/`.

The console so far: sign-in, the dashboard, member search and a member's page. Pages use the same session
cookie and role checks as the API (see service/guards.py); a distributor's session cannot open brand pages
(403).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, Router, get
from litestar.params import Parameter
from litestar.response import Redirect
from psycopg import AsyncConnection

from antifraud import divisions, reports
from campaigns.members import kpis, tags
from service.db import fetch_all, fetch_one
from service.guards import brand_of, console_role, principal_from, require_token, roles
from service.models import Role
from service.queries import load_queries
from service.routes import (
    console_antifraud,
    console_campaigns,
    console_catalog,
    console_members,
    console_settings,
    member_admin,
)
from service.routes import reports as report_routes
from service.routes.console_common import (
    BRAND_PAGE_ROLES,
    CHINA,
    FormDay,
    bars,
    day_range,
    form_day,
    page_exception_handlers,
    render,
    texts,
    who,
)

QUERIES = load_queries("service.sql", "console.sql")


class _ScanSummary(msgspec.Struct, frozen=True):
    today: int
    week: int
    genuine_first: int
    genuine_repeat: int
    suspect_clone: int
    not_activated: int
    counterfeit: int


class _RegionScans(msgspec.Struct, frozen=True):
    region: str
    scans: int
    clones: int


class _LiveCampaign(msgspec.Struct, frozen=True):
    id: Any
    name: str
    kind: str
    status: str
    spent_cents: int
    budget_cents: int


# Where /console (the sign-in's and every error page's way back) sends a role: the dashboard is for the
# brand's own staff; a distributor's home is its portal, a till's its account.
HOME_PAGES: Final = {Role.DISTRIBUTOR: "/console/portal", Role.POINT_OF_SALE: "/console/account"}


@get("/console", include_in_schema=False)
async def console_home(request: Request[Any, Any, Any]) -> Redirect:
    role = await console_role(request)
    if role is None:
        return Redirect("/console/sign-in")
    return Redirect(HOME_PAGES.get(role, "/console/dashboard"))


@get("/console/sign-in", include_in_schema=False)
async def sign_in_page(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "console_sign_in.html", title=texts(request)["sign_in"])


@get("/console/dashboard", opt=roles(*BRAND_PAGE_ROLES), include_in_schema=False)
async def dashboard(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], report_db: AsyncConnection[Any]
) -> Response[str]:
    """Scans today and this week, the verdict mix, alerts, live campaigns' spend, member figures, and the
    regions where scans and (for the roles that read reports) diversion are hottest."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    now = dt.datetime.now(dt.UTC)
    regions = await fetch_all(db, QUERIES["scan_regions"], {"brand_id": brand_id, "now": now}, _RegionScans)
    diversion: list[tuple[str, int, int]] = []
    if principal.role in report_routes.READERS:
        scope = report_routes.report_scope(principal, None, None)
        found = await reports.report(report_db, scope, before=None, limit=1)
        diversion = bars([(c.key or "", c.events) for c in found.totals.by_region[:10]])
    scans = await fetch_one(db, QUERIES["scan_summary"], {"brand_id": brand_id, "now": now}, _ScanSummary)
    assert scans is not None
    live = await fetch_all(db, QUERIES["live_campaigns"], {"brand_id": brand_id}, _LiveCampaign)
    figures = await kpis.kpis(db, brand_id, range_from=now - dt.timedelta(days=30), range_to=now, now=now)
    words = texts(request)
    mix = [
        (words["genuine_first"], scans.genuine_first),
        (words["genuine_repeat"], scans.genuine_repeat),
        (words["suspect_clone"], scans.suspect_clone),
        (words["not_activated"], scans.not_activated),
        (words["counterfeit_verdict"], scans.counterfeit),
    ]
    return render(
        request,
        "console_dashboard.html",
        title=words["dashboard"],
        user=await who(db, principal),
        scans=scans,
        verdicts=bars(mix),
        campaigns=live,
        kpis=figures,
        regions=regions,
        diversion=diversion,
    )


@get("/console/members", opt=roles(*member_admin.READERS), include_in_schema=False)
async def members_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Find a member by phone (the page posts the number; it never goes into a URL)."""
    return render(
        request,
        "console_members.html",
        title=texts(request)["members_nav"],
        user=await who(db, principal_from(request)),
    )


@get("/console/members/{member_id:uuid}", opt=roles(*member_admin.READERS), include_in_schema=False)
async def member_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID
) -> Response[str]:
    """One member: profile as the role may see it (full reads audited, as on the API) and the timeline,
    naming what it refers to (a campaign, a prize, a product...) where the API gives ids."""
    principal = principal_from(request)
    member = await member_admin.read_profile(request, db, principal, member_id)
    timeline = await member_admin.visible_timeline(
        request, db, principal, member_id, before=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), limit=50
    )
    manual = [t.name for t in await tags.list_tags(db, brand_of(principal)) if t.kind == "manual"]
    return render(
        request,
        "console_member.html",
        title=member.name or member.phone or str(member.id),
        user=await who(db, principal),
        member=member,
        timeline=await console_members.timeline_in_words(db, principal, timeline, texts(request)),
        manual_tags=manual,
        may_tag=principal.role in member_admin.TAGGERS,
        may_adjust=principal.role in member_admin.ADJUSTERS,
        may_note=principal.role in member_admin.EDITORS,
    )


@get("/console/portal", opt=roles(Role.DISTRIBUTOR), include_in_schema=False)
async def portal(
    request: Request[Any, Any, Any],
    report_db: AsyncConnection[Any],
    since: FormDay | None = None,
    until: FormDay | None = None,
    region: Annotated[str | None, Parameter(max_length=10)] = None,
) -> Response[str]:
    """A distributor's shipments (to receive) and its own diversion events, filtered by days and region
    (its territory only, as the report API scopes them); the CSV link carries the same filters."""
    principal = principal_from(request)
    words = texts(request)
    shipments = await console_catalog.recent_shipments(
        report_db, brand_of(principal), only_distributor=principal.distributor_id
    )
    first, last = form_day("since", since), form_day("until", until)
    if first is not None and first > (last or dt.datetime.now(CHINA).date()):
        # Days that end before they start: the page says so beside the filter, the shipments still show.
        return render(
            request,
            "console_portal.html",
            title=words["portal"],
            user=await who(report_db, principal),
            report=None,
            range_error=words["reversed_range"],
            shipments=shipments,
            may_receive=True,
            shown_since=first,
            shown_until=last or "",
            region=region or "",
        )
    # Whole days in China's time, as a distributor reads its paperwork; the last 30 days by default.
    start, end = day_range(first, last)
    scope = report_routes.report_scope(principal, start, end, region=region.upper() if region else None)
    found = await reports.report(report_db, scope, before=None, limit=100)
    filters = {"since": scope.since.isoformat(), "until": scope.until.isoformat()}
    if scope.region:
        filters["region"] = scope.region
    return render(
        request,
        "console_portal.html",
        title=words["portal"],
        user=await who(report_db, principal),
        report=found,
        range_error=None,
        total=sum(c.events for c in found.totals.by_distributor),
        weeks=bars([(c.key or "", c.events) for c in found.totals.by_week]),
        regions=bars([(c.key or "", c.events) for c in found.totals.by_region]),
        shipments=shipments,
        may_receive=True,
        csv_link="/v1/reports/diversion?" + urlencode({**filters, "format": "csv"}),
        city_names={e.city: divisions.city_name(e.city) for e in found.items if e.city},
        shown_since=scope.since.astimezone(CHINA).date(),
        shown_until=(scope.until.astimezone(CHINA) - dt.timedelta(microseconds=1)).date(),
        region=scope.region or "",
    )


def console_pages_router() -> Router:
    return Router(
        "/",
        route_handlers=[
            console_home,
            sign_in_page,
            *console_settings.PUBLIC_PAGES,
            Router(
                "/",
                route_handlers=[
                    dashboard,
                    members_page,
                    member_page,
                    portal,
                    *console_campaigns.PAGES,
                    *console_catalog.PAGES,
                    *console_antifraud.PAGES,
                    *console_settings.PAGES,
                    *console_members.PAGES,
                ],
                guards=[require_token],
            ),
        ],
        exception_handlers=page_exception_handlers(),
    )
