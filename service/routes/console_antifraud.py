"""The console's anti-fraud pages (flagged codes and cases, the blocklist, one code's story and scan map)
and the audit log viewer.

Reviews, blocks and lifts are calls to the JSON API from the page; the API audits them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud import blocklist, review, trace
from service.db import fetch_all
from service.errors import NotFound
from service.guards import brand_of, principal_from, roles
from service.models import Role
from service.queries import load_queries
from service.routes import antifraud as antifraud_routes
from service.routes.console_common import CHINA, FormDay, day_range, form_day, render, texts, who
from service.settings import Settings
from service.state import AppState

QUERIES = load_queries("service.sql", "console.sql")
LISTED = 100
AUDIT_ROLES = (Role.BRAND_ADMIN, Role.AUDITOR)
MAP_WIDTH, MAP_HEIGHT, MAP_MARGIN = 600, 360, 24


class AuditRow(msgspec.Struct, frozen=True):
    id: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    before: Any
    after: Any
    actor_name: str | None


class _ObjectType(msgspec.Struct, frozen=True):
    object_type: str


class MapPoint(msgspec.Struct, frozen=True):
    x: float
    y: float
    label: str
    diverted: bool


@get("/console/antifraud", opt=roles(*antifraud_routes.READERS), include_in_schema=False)
async def antifraud_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Open flags (confirm or clear), flagged cases, active blocks (lift, add), and a code lookup."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    state: AppState = request.app.state.onecode
    await state.registry_follower.ensure_loaded()
    flagged = await review.flagged(db, brand_id, status="open", after=None, limit=LISTED)
    now = dt.datetime.now(dt.UTC)
    return render(
        request,
        "console_antifraud.html",
        title=texts(request)["antifraud_nav"],
        user=await who(db, principal),
        flagged=flagged,
        serials={f.id: state.registry.serial_of(brand_id, f.key_id, f.code_index) for f in flagged},
        cases=await review.flagged_cases(db, brand_id, limit=LISTED),
        blocks=await blocklist.list_blocks(db, brand_id, active_only=True, after=None, limit=LISTED, now=now),
        may_write=principal.role in antifraud_routes.WRITERS,
    )


@get("/console/codes/{serial:str}", opt=roles(*antifraud_routes.TRACERS), include_in_schema=False)
async def code_page(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    serial: Annotated[str, Parameter(max_length=40)],
) -> Response[str]:
    """One item's story (batch, case and pallet, shipment, every scan) and its scans on a map."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    state: AppState = request.app.state.onecode
    await state.registry_follower.ensure_loaded()
    found = state.registry.find_serial(brand_id, serial)
    if found is None:
        raise NotFound("code", serial)
    facts, path = found
    story = await trace.code_trace(db, facts, path, scan_domain=settings.scan_domain)
    return render(
        request,
        "console_code.html",
        title=story.serial,
        user=await who(db, principal),
        story=story,
        points=scan_map(story.scans),
        map_size=(MAP_WIDTH, MAP_HEIGHT),
    )


def scan_map(scans: list[trace.ItemScan]) -> list[MapPoint]:
    """Scans with a location, in time order, placed on a plain longitude/latitude plane that fits them
    (no map tiles: nothing loads from elsewhere). Lines between consecutive points show the travel."""
    located = sorted(
        (s.scanned_at, s.lat, s.lng, s.region, s.diverted)
        for s in scans
        if s.lat is not None and s.lng is not None
    )
    if not located:
        return []
    lats = [lat for _, lat, _, _, _ in located]
    lngs = [lng for _, _, lng, _, _ in located]
    # At least a degree either way, so one place or one city does not fill the whole frame.
    span_lat = max(max(lats) - min(lats), 1.0)
    span_lng = max(max(lngs) - min(lngs), 1.0)
    mid_lat, mid_lng = (max(lats) + min(lats)) / 2, (max(lngs) + min(lngs)) / 2
    inner_w, inner_h = MAP_WIDTH - 2 * MAP_MARGIN, MAP_HEIGHT - 2 * MAP_MARGIN
    points = []
    for n, (at, lat, lng, region, diverted) in enumerate(located, start=1):
        x = MAP_WIDTH / 2 + (lng - mid_lng) / span_lng * inner_w
        y = MAP_HEIGHT / 2 - (lat - mid_lat) / span_lat * inner_h
        label = f"{n}. {at.astimezone(CHINA):%m-%d %H:%M} {region or ''}".strip()
        points.append(MapPoint(round(x, 1), round(y, 1), label, diverted))
    return points


@get("/console/audit", opt=roles(*AUDIT_ROLES), include_in_schema=False)
async def audit_page(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    action: Annotated[str | None, Parameter(max_length=64)] = None,
    object_type: Annotated[str | None, Parameter(max_length=64)] = None,
    actor: Annotated[str | None, Parameter(max_length=254)] = None,
    since: FormDay | None = None,
    until: FormDay | None = None,
    before: Annotated[int | None, Parameter(ge=1, le=2**63 - 1)] = None,
) -> Response[str]:
    """The brand's audit log, newest first, filtered; "older" pages by id (the log is append-only)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    first, last = form_day("since", since), form_day("until", until)
    start, end = day_range(first, last)
    filters = {
        "action": action or None,
        "object_type": object_type or None,
        "actor": actor or None,
        "since": start,
        "until": end,
    }
    found = await fetch_all(
        db,
        QUERIES["audit_page"],
        {"brand_id": brand_id, "before_id": before, "limit": LISTED + 1, **filters},
        AuditRow,
    )
    rows = found[:LISTED]
    kinds = await fetch_all(db, QUERIES["audit_object_types"], {"brand_id": brand_id}, _ObjectType)
    shown = {
        "action": action or "",
        "object_type": object_type or "",
        "actor": actor or "",
        "since": first.isoformat() if first else "",
        "until": last.isoformat() if last else "",
    }
    words = texts(request)
    return render(
        request,
        "console_audit.html",
        title=words["audit_nav"],
        user=await who(db, principal),
        # Days that end before they start find nothing: say why beside the filter.
        range_error=words["reversed_range"] if first and last and first > last else None,
        rows=rows,
        object_types=[k.object_type for k in kinds],
        shown=shown,
        older={**{k: v for k, v in shown.items() if v}, "before": rows[-1].id}
        if len(found) > LISTED  # no "older" link to an empty page
        else None,
    )


PAGES = [antifraud_page, code_page, audit_page]
