"""The membership programme over HTTP: tags, tiers, settings, segments and KPIs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.params import Parameter, QueryParameter
from psycopg import AsyncConnection

from campaigns.members import kpis, segments, tags, tiers
from service import audit
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Principal, Role
from service.patching import apply_patch
from service.routes.admin import Limit, page
from service.routes.member_admin import READERS
from service.settings import Settings

DESIGNERS = (Role.BRAND_ADMIN, Role.MARKETER)
# Exports leave the building: customer service looks members up one at a time instead.
EXPORTERS = (Role.BRAND_ADMIN, Role.MARKETER)
EXPORT_PAGE = 50_000


@post("/tags", opt=roles(*DESIGNERS), tags=["membership"])
async def create_tag(request: Request[Any, Any, Any], db: AsyncConnection[Any], data: tags.TagIn) -> tags.Tag:
    """A manual tag (no rule) or a rule tag, computed for every member by the next refresh."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    created = await tags.create_tag(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="tag.create",
        object_type="tag",
        object_id=created.id,
        after=data,
    )
    return created


@get("/tags", opt=roles(*READERS), tags=["membership"])
async def list_tags(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: Annotated[
        str | None, Parameter(max_length=40, description="the previous page's next_cursor")
    ] = None,
    limit: Limit = 50,
) -> Page:
    """The brand's tags by name (the cursor is the last one's name), each with its member count."""
    limit = min(limit, settings.max_page_size)
    items = await tags.list_page(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda t: t.name)


@delete("/tags/{tag_name:str}", opt=roles(*DESIGNERS), tags=["membership"], status_code=204)
async def delete_tag(request: Request[Any, Any, Any], db: AsyncConnection[Any], tag_name: str) -> None:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    await tags.delete_tag(db, brand_id, tag_name)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="tag.delete",
        object_type="tag",
        object_id=tag_name,
    )


@get("/member-tiers", opt=roles(*READERS), tags=["membership"])
async def list_tiers(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> tiers.Ladder:
    """The tier ladder, lowest first, in the shape PUT takes back."""
    return tiers.Ladder(tiers=await tiers.list_tiers(db, brand_of(principal_from(request))))


@put("/member-tiers", opt=roles(*DESIGNERS), tags=["membership"])
async def put_tiers(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: tiers.TiersIn
) -> tiers.Ladder:
    """Replace the tier ladder; members move at the next refresh (upgrades now, downgrades at year end)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await tiers.list_tiers(db, brand_id)
    ladder = await tiers.put_tiers(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member_tiers.replace",
        object_type="member_tiers",
        object_id=brand_id,
        before=before,
        after=ladder,
    )
    return tiers.Ladder(tiers=ladder)


@get("/member-settings", opt=roles(*READERS), tags=["membership"])
async def get_settings(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> tiers.MemberSettings:
    return await tiers.get_settings(db, brand_of(principal_from(request)))


@put("/member-settings", opt=roles(Role.BRAND_ADMIN), tags=["membership"])
async def put_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: tiers.MemberSettings
) -> tiers.MemberSettings:
    """Lifecycle thresholds (days), the tier scan window, the finance approval threshold (points)."""
    return await _save_settings(request, db, data)


@patch("/member-settings", opt=roles(Role.BRAND_ADMIN), tags=["membership"])
async def patch_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: dict[str, Any]
) -> tiers.MemberSettings:
    """Change only the settings named (PUT replaces them all: what it leaves out goes back to its default)."""
    current = await tiers.get_settings(db, brand_of(principal_from(request)))
    return await _save_settings(request, db, apply_patch(current, data))


async def _save_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: tiers.MemberSettings
) -> tiers.MemberSettings:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await tiers.get_settings(db, brand_id)
    saved = await tiers.put_settings(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member_settings.update",
        object_type="member_settings",
        object_id=brand_id,
        before=before,
        after=saved,
    )
    return saved


@post("/segments", opt=roles(*DESIGNERS), tags=["membership"])
async def create_segment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: segments.SegmentIn
) -> segments.Segment:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    created = await segments.create(db, brand_id, data, actor=principal.actor)
    await _audit_segment(db, principal, brand_id, "segment.create", created.id, data)
    return created


@get("/segments", opt=roles(*READERS), tags=["membership"])
async def list_segments(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: Annotated[
        str | None, Parameter(max_length=80, description="the previous page's next_cursor")
    ] = None,
    limit: Limit = 50,
) -> Page:
    """The brand's saved segments by name (the cursor is the last one's name)."""
    limit = min(limit, settings.max_page_size)
    items = await segments.list_page(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda s: s.name)


@get("/segments/{segment_id:uuid}", opt=roles(*READERS), tags=["membership"])
async def get_segment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], segment_id: uuid.UUID
) -> segments.Segment:
    return await segments.get(db, brand_of(principal_from(request)), segment_id)


@put("/segments/{segment_id:uuid}", opt=roles(*DESIGNERS), tags=["membership"])
async def update_segment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], segment_id: uuid.UUID, data: segments.SegmentIn
) -> segments.Segment:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await segments.get(db, brand_id, segment_id)
    updated = await segments.update(db, brand_id, segment_id, data)
    await _audit_segment(db, principal, brand_id, "segment.update", segment_id, data, before=before)
    return updated


@delete("/segments/{segment_id:uuid}", opt=roles(*DESIGNERS), tags=["membership"], status_code=204)
async def delete_segment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], segment_id: uuid.UUID
) -> None:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await segments.get(db, brand_id, segment_id)
    await segments.delete(db, brand_id, segment_id)
    await _audit_segment(db, principal, brand_id, "segment.delete", segment_id, None, before=before)


async def _audit_segment(
    db: AsyncConnection[Any],
    principal: Principal,
    brand_id: uuid.UUID,
    action: str,
    segment_id: uuid.UUID,
    after: Any,
    *,
    before: Any = None,
) -> None:
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action=action,
        object_type="segment",
        object_id=segment_id,
        before=before,
        after=after,
    )


@post("/segments:count", opt=roles(*READERS), tags=["membership"], status_code=200)
async def preview_count(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: segments.SegmentFilter
) -> segments.SegmentCount:
    """The live count of an unsaved filter, for the segment builder."""
    return await segments.count(db, brand_of(principal_from(request)), data)


@get("/segments/{segment_id:uuid}/count", opt=roles(*READERS), tags=["membership"])
async def segment_count(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], segment_id: uuid.UUID
) -> segments.SegmentCount:
    brand_id = brand_of(principal_from(request))
    segment = await segments.get(db, brand_id, segment_id)
    return await segments.count(db, brand_id, segment.filter)


@get("/segments/{segment_id:uuid}/members.csv", opt=roles(*EXPORTERS), tags=["membership"])
async def export_segment(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    segment_id: uuid.UUID,
    after: uuid.UUID | None = None,
    limit: int = EXPORT_PAGE,
) -> Response[bytes]:
    """The segment's members as CSV, phones masked, by member id; the next file is in `Link: rel="next"`."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    limit = max(1, min(limit, EXPORT_PAGE))
    segment = await segments.get(db, brand_id, segment_id)
    found = await segments.members_page(db, brand_id, segment.filter, after=after, limit=limit + 1)
    rows = found[:limit]
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="segment.export",
        object_type="segment",
        object_id=segment_id,
        after={"rows": len(rows), "after": after},
    )
    headers = {"content-disposition": f'attachment; filename="segment-{segment_id}.csv"'}
    if len(found) > limit:  # a file that ends on the last member has no next file
        headers["link"] = (
            f'</v1/segments/{segment_id}/members.csv?after={rows[-1].id}&limit={limit}>; rel="next"'
        )
    return Response(
        segments.members_csv(rows, header=after is None),
        media_type="text/csv",
        headers=headers,
    )


@get("/kpis", opt=roles(*READERS), tags=["membership"])
async def member_kpis(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    from_: Annotated[dt.datetime | None, QueryParameter(name="from")] = None,
    to: dt.datetime | None = None,
    segment_id: uuid.UUID | None = None,
) -> kpis.Kpis:
    """Membership KPIs over [from, to) (default: the last 30 days), of the brand or of one segment's
    members; the formulas are in campaigns/members/kpis.py."""
    now = dt.datetime.now(dt.UTC)
    range_to = to or now
    return await kpis.kpis(
        db,
        brand_of(principal_from(request)),
        range_from=from_ or range_to - dt.timedelta(days=30),
        range_to=range_to,
        now=now,
        segment_id=segment_id,
    )


def membership_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_tag,
            list_tags,
            delete_tag,
            list_tiers,
            put_tiers,
            get_settings,
            put_settings,
            patch_settings,
            create_segment,
            list_segments,
            get_segment,
            update_segment,
            delete_segment,
            preview_count,
            segment_count,
            export_segment,
            member_kpis,
        ],
        guards=[require_token],
    )
