"""Staff work on members over HTTP: search, profiles, timelines, notes, tags, merges, points adjustments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from litestar import Request, Response, Router, delete, get, patch, post, put
from litestar.params import QueryParameter
from psycopg import AsyncConnection

from campaigns import ledger, rewards
from campaigns.members import adjustments, imports, profiles, tags
from service import audit
from service.errors import InvalidField
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Principal, Role
from service.routes.admin import Limit
from service.settings import Settings
from service.state import AppState

READERS = (Role.BRAND_ADMIN, Role.MARKETER, Role.CUSTOMER_SERVICE, Role.FINANCE, Role.AUDITOR)
EDITORS = (Role.BRAND_ADMIN, Role.CUSTOMER_SERVICE)
TAGGERS = (Role.BRAND_ADMIN, Role.MARKETER, Role.CUSTOMER_SERVICE)
ADJUSTERS = (Role.CUSTOMER_SERVICE, Role.FINANCE)
# Who sees phone numbers and names in full; everyone else gets them masked.
PHONE_READERS = frozenset({Role.BRAND_ADMIN, Role.CUSTOMER_SERVICE})
# A member list of a million rows is about 40 MB; larger lists go in several files.
IMPORT_MAX_BYTES = 64 * 1024 * 1024


class NoteIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Lines of text; a NUL is refused as in every clear-text column.
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^[^\x00]+$")]


class MergeIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    into: uuid.UUID
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=200)]


class AdjustmentOutcome(msgspec.Struct, frozen=True):
    """`applied` with the ledger result, `pending` a finance decision (large amounts), or `rejected`."""

    status: Literal["applied", "pending", "rejected"]
    adjustment: rewards.Adjustment | None
    request: adjustments.AdjustmentRequest | None


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state.onecode
    return state


async def read_profile(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], principal: Principal, member_id: uuid.UUID
) -> profiles.MemberProfile:
    """The profile, in full for the roles that may see it; every full read is in the audit log."""
    brand_id = brand_of(principal)
    reveal = principal.role in PHONE_READERS
    found = await profiles.load_profile(db, _state(request).vault, brand_id, member_id, reveal=reveal)
    if found.phone_revealed:
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_id,
            action="member.read_personal",
            object_type="member",
            object_id=member_id,
        )
    return found


class SearchIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


@post("/members:search", opt=roles(*READERS), tags=["members"], status_code=200)
async def search_members(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: SearchIn
) -> list[profiles.MemberProfile]:
    """Find a member by phone number (exact, through the blind index; any common format). A POST, so
    that the number never lands in a URL, and so in no proxy's access log."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    found = await profiles.find_by_phone(db, _state(request).vault, brand_id, data.phone)
    # Whether a number is a member is itself personal: every search is in the audit log.
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member.search",
        object_type="member",
        object_id=found,
        after={"found": found is not None},
    )
    return [] if found is None else [await read_profile(request, db, principal, found)]


@get("/members/{member_id:uuid}", opt=roles(*READERS), tags=["members"])
async def get_member(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID
) -> profiles.MemberProfile:
    """One member: profile (masked unless the role may see personal data), tier, lifecycle, points, tags."""
    return await read_profile(request, db, principal_from(request), member_id)


@patch("/members/{member_id:uuid}", opt=roles(*EDITORS), tags=["members"])
async def update_member(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    member_id: uuid.UUID,
    data: profiles.ProfilePatch,
) -> profiles.MemberProfile:
    """Correct a profile; personal fields are re-sealed, custom attributes checked against their types."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    await profiles.update_profile(
        db, _state(request).vault, brand_id, member_id, data, today=dt.datetime.now(dt.UTC).date()
    )
    changed = sorted(k for k, v in msgspec.structs.asdict(data).items() if v is not None)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member.update",
        object_type="member",
        object_id=member_id,
        after={"fields": changed},  # names only: the audit log holds no personal data
    )
    return await read_profile(request, db, principal, member_id)


@get("/members/{member_id:uuid}/timeline", opt=roles(*READERS), tags=["members"])
async def member_timeline(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    member_id: uuid.UUID,
    before: dt.datetime | None = None,
    before_entry: str | None = None,
    limit: Limit = 50,
) -> list[profiles.TimelineEntry]:
    """Scans, points, coupons, draws, tier changes and service notes, newest first.

    The next page: `before` = the last entry's `at` and `before_entry` = its `kind:ref` (entries often
    share a time: a scan's points and draw are written with it).
    """
    tie = None
    if before_entry is not None:
        kind, _, ref = before_entry.partition(":")
        if kind not in profiles.TIMELINE_KINDS or not ref or before is None:
            raise InvalidField("before_entry", "the last entry's kind:ref, sent with its at as before")
        tie = (kind, ref)
    return await visible_timeline(
        request,
        db,
        principal_from(request),
        member_id,
        before=before or dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
        before_entry=tie,
        limit=min(limit, settings.max_page_size),
    )


async def visible_timeline(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    principal: Principal,
    member_id: uuid.UUID,
    *,
    before: dt.datetime,
    before_entry: tuple[str, str] | None = None,
    limit: int,
) -> list[profiles.TimelineEntry]:
    """The member's timeline as this role may see it: note texts only for the roles that see personal data."""
    entries = await profiles.timeline(
        db,
        _state(request).vault,
        brand_of(principal),
        member_id,
        before=before,
        before_entry=before_entry,
        limit=limit,
    )
    if principal.role in PHONE_READERS:
        return entries
    return [
        msgspec.structs.replace(e, detail={k: v for k, v in e.detail.items() if k != "body"}) for e in entries
    ]


@post("/members/{member_id:uuid}/notes", opt=roles(*EDITORS), tags=["members"])
async def add_note(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID, data: NoteIn
) -> profiles.Note:
    """A customer service note, sealed under the member's data key; it shows in the timeline."""
    principal = principal_from(request)
    return await profiles.add_note(
        db, _state(request).vault, brand_of(principal), member_id, data.body, author=principal.actor
    )


@put("/members/{member_id:uuid}/tags/{tag_name:str}", opt=roles(*TAGGERS), tags=["members"])
async def tag_member(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID, tag_name: str
) -> tags.MemberTag:
    """Give a member a manual tag (idempotent); rule tags are computed, not given."""
    principal = principal_from(request)
    return await tags.tag_member(db, brand_of(principal), member_id, tag_name, actor=principal.actor)


@delete(
    "/members/{member_id:uuid}/tags/{tag_name:str}", opt=roles(*TAGGERS), tags=["members"], status_code=204
)
async def untag_member(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID, tag_name: str
) -> None:
    principal = principal_from(request)
    await tags.untag_member(db, brand_of(principal), member_id, tag_name)


@post("/members/{member_id:uuid}/merge", opt=roles(*EDITORS), tags=["members"], status_code=200)
async def merge_member(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID, data: MergeIn
) -> profiles.MemberProfile:
    """Merge a duplicate into another member: devices, points and history follow; audited."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    moved = await profiles.merge(
        db, brand_id, source_id=member_id, target_id=data.into, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member.merge",
        object_type="member",
        object_id=member_id,
        after={"into": data.into, "reason": data.reason, "points_moved": moved},
    )
    return await read_profile(request, db, principal, data.into)


@post("/members/{member_id:uuid}/points/adjustments", opt=roles(*ADJUSTERS), tags=["members"])
async def adjust_points(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    member_id: uuid.UUID,
    data: rewards.AdjustmentIn,
) -> Response[AdjustmentOutcome]:
    """Add or take points with a reason. Above the brand's threshold an adjustment waits for a finance
    decision by someone else (202 `pending`); below it, it applies at once (201). Audited either way."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    member = ledger.Member(brand_id, member_id)
    threshold = await adjustments.approval_threshold(db, brand_id)
    if abs(data.amount) > threshold:
        pending = await adjustments.request(db, member, data, actor=principal.actor)
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_id,
            action="points.adjust_requested",
            object_type="member",
            object_id=member_id,
            after={"request_id": pending.id, "amount": data.amount, "reason": data.reason},
        )
        return Response(AdjustmentOutcome("pending", None, pending), status_code=202)
    adjustment = await rewards.adjust_points(
        db, member, data, actor=principal.actor, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="points.adjust",
        object_type="member",
        object_id=member_id,
        after={"amount": data.amount, "reason": data.reason, "balance": adjustment.balance},
    )
    return Response(AdjustmentOutcome("applied", adjustment, None), status_code=201)


@get("/points-adjustments", opt=roles(Role.FINANCE, Role.BRAND_ADMIN, Role.AUDITOR), tags=["members"])
async def list_adjustment_requests(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    status: Literal["pending", "approved", "rejected"] = "pending",
    after: int | None = None,
    limit: Limit = 50,
) -> list[adjustments.AdjustmentRequest]:
    return await adjustments.list_requests(
        db,
        brand_of(principal_from(request)),
        status=status,
        after=after,
        limit=min(limit, settings.max_page_size),
    )


@post(
    "/points-adjustments/{request_id:int}/{decision:str}",
    opt=roles(Role.FINANCE),
    tags=["members"],
    status_code=200,
)
async def decide_adjustment(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    request_id: int,
    decision: str,
    data: adjustments.DecisionIn | None = None,
) -> AdjustmentOutcome:
    """`approve` writes the adjustment to the ledger; `reject` closes the request and needs a `reason`
    (`{"reason": "duplicate of #12"}`; an approval may give one too). Never by its requester."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    if decision not in {"approve", "reject"}:
        raise adjustments.UnknownDecision(decision)
    decided, adjustment = await adjustments.decide(
        db,
        brand_id,
        request_id,
        approve=decision == "approve",
        reason=None if data is None else data.reason,
        actor=principal.actor,
        now=dt.datetime.now(dt.UTC),
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action=f"points.adjust_{decided.status}",
        object_type="member",
        object_id=decided.member_id,
        after={
            "request_id": decided.id,
            "amount": decided.amount,
            "reason": decided.reason,
            "decision_reason": decided.decision_reason,
        },
    )
    return AdjustmentOutcome("applied" if adjustment else "rejected", adjustment, decided)


@get("/member-attributes", opt=roles(*READERS), tags=["members"])
async def list_attributes(
    request: Request[Any, Any, Any], db: AsyncConnection[Any]
) -> list[profiles.AttributeDef]:
    return await profiles.attribute_defs(db, brand_of(principal_from(request)))


@post("/member-attributes", opt=roles(Role.BRAND_ADMIN), tags=["members"], status_code=200)
async def define_attribute(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: profiles.AttributeDefIn
) -> profiles.AttributeDef:
    """Define (or retype) a custom member field: text, number, boolean, date or one of some choices."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    defined = await profiles.put_attribute_def(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member.attribute_define",
        object_type="member_attribute",
        object_id=data.name,
        after=defined,
    )
    return defined


@post(
    "/member-imports",
    opt=roles(Role.BRAND_ADMIN),
    tags=["members"],
    status_code=200,
    request_max_body_size=IMPORT_MAX_BYTES,
)
async def import_members(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    dry_run: bool = False,
    key: Annotated[str | None, QueryParameter(max_length=128)] = None,
    filename: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> imports.ImportReport:
    """Import a member list sent as the CSV body (UTF-8 or GBK; phone, name, birthday, points...).
    `dry_run=true` checks and counts without writing. The same file (or `key`) again imports nothing new."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    body = await request.body()
    # Chunks commit as they go, so that a stopped import resumes: not inside the request's transaction.
    async with await psycopg.AsyncConnection.connect(settings.database_url or "", autocommit=True) as own:
        report = await imports.run(
            own,
            _state(request).vault,
            settings.master_key,
            brand_id,
            body,
            actor=principal.actor,
            now=dt.datetime.now(dt.UTC),
            dry_run=dry_run,
            import_key=key,
            filename=filename,
        )
    if not dry_run:
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_id,
            action="member.import",
            object_type="member_import",
            object_id=report.id,
            after={k: v for k, v in msgspec.structs.asdict(report).items() if k != "errors"},
        )
    return report


@get("/member-imports/{import_id:uuid}", opt=roles(Role.BRAND_ADMIN), tags=["members"])
async def get_import(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], import_id: uuid.UUID
) -> imports.ImportRecord:
    return await imports.get(db, brand_of(principal_from(request)), import_id)


@get("/member-imports/{import_id:uuid}/errors.csv", opt=roles(Role.BRAND_ADMIN), tags=["members"])
async def import_errors(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, import_id: uuid.UUID
) -> Response[bytes]:
    """The rejected and duplicate rows with their reasons, to correct and import again."""
    body = await imports.error_file(
        db, settings.all_master_keys, brand_of(principal_from(request)), import_id
    )
    headers = {"content-disposition": f'attachment; filename="import-{import_id}-errors.csv"'}
    return Response(body, media_type="text/csv", headers=headers)


def member_admin_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            search_members,
            get_member,
            update_member,
            member_timeline,
            add_note,
            tag_member,
            untag_member,
            merge_member,
            adjust_points,
            list_adjustment_requests,
            decide_adjustment,
            list_attributes,
            define_attribute,
            import_members,
            get_import,
            import_errors,
        ],
        guards=[require_token],
    )
