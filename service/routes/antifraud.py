"""Anti-fraud settings and review over HTTP: clone thresholds and the flagged codes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get, patch, post, put
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud import blocklist, review, trace
from antifraud.blocklist import Block, BlockIn
from antifraud.clones import CloneRules
from antifraud.review import FlaggedCase, FlagStatus, Reviewed, ReviewIn
from service import audit
from service.errors import NotFound
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Role
from service.patching import apply_patch
from service.registry_follower import RegistryFollower
from service.routes.admin import Limit, page
from service.settings import Settings
from service.state import AppState

WRITERS = (Role.BRAND_ADMIN, Role.OPERATIONS)
READERS = (*WRITERS, Role.AUDITOR, Role.MARKETER, Role.CUSTOMER_SERVICE)


@get("/antifraud/clone-rules", opt=roles(*READERS), tags=["antifraud"])
async def get_clone_rules(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> CloneRules:
    """When a code's scans make it a suspect clone (see antifraud.clones for what each threshold means)."""
    return await review.clone_rules(db, brand_of(principal_from(request)))


@put("/antifraud/clone-rules", opt=roles(*WRITERS), tags=["antifraud"])
async def set_clone_rules(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: CloneRules
) -> CloneRules:
    """`{"devices": 10, "regions": 3, "max_speed_kmh": 800}`; audited; live on all workers within 1 s."""
    return await _save_clone_rules(request, db, data)


@patch("/antifraud/clone-rules", opt=roles(*WRITERS), tags=["antifraud"])
async def patch_clone_rules(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: dict[str, Any]
) -> CloneRules:
    """Change only the thresholds named (PUT replaces them all: what it leaves out returns to its default)."""
    current = await review.clone_rules(db, brand_of(principal_from(request)))
    return await _save_clone_rules(request, db, apply_patch(current, data))


async def _save_clone_rules(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: CloneRules
) -> CloneRules:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await review.clone_rules(db, brand_id)
    saved = await review.save_clone_rules(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="antifraud.clone_rules",
        object_type="brand",
        object_id=brand_id,
        before=before,
        after=saved,
    )
    await _follower(request).apply_now(db)
    return saved


@get("/antifraud/flagged", opt=roles(*READERS), tags=["antifraud"])
async def list_flagged(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    status: FlagStatus = "open",
    after: int | None = None,
    limit: Limit = 50,
) -> Page:
    """Codes whose scans crossed a clone threshold, with their case and pallet, oldest flag first."""
    limit = min(limit, settings.max_page_size)
    brand_id = brand_of(principal_from(request))
    items = await review.flagged(db, brand_id, status=status, after=after, limit=limit + 1)
    registry = request.app.state.onecode.registry
    items = [
        msgspec.structs.replace(f, serial=registry.serial_of(brand_id, f.key_id, f.code_index)) for f in items
    ]
    return page(items, limit, lambda i: i.id)


@get("/antifraud/flagged-cases", opt=roles(*READERS), tags=["antifraud"])
async def list_flagged_cases(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
) -> list[FlaggedCase]:
    """Cases (and pallets) holding open flagged codes, most flagged first: a copied code, a copied case."""
    return await review.flagged_cases(db, brand_of(principal_from(request)), limit=limit)


@post("/antifraud/flagged/{flag_id:int}/review", opt=roles(*WRITERS), status_code=200, tags=["antifraud"])
async def review_flag(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], flag_id: int, data: ReviewIn
) -> Reviewed:
    """`cleared` (a false alarm: the code's clone signals start over) or `confirmed` (a copied code)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    reviewed = await review.review(
        db, brand_id=brand_id, flag_id=flag_id, data=data, actor=principal.actor, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action=f"antifraud.flag_{data.status}",
        object_type="flagged_code",
        object_id=flag_id,
        after=reviewed,
    )
    if data.status == "cleared":
        state: AppState = request.app.state.onecode
        await state.signals.forget_code((brand_id, reviewed.key_id, reviewed.code_index))
    return reviewed


@post("/antifraud/blocks", opt=roles(*WRITERS), tags=["antifraud"])
async def create_block(request: Request[Any, Any, Any], db: AsyncConnection[Any], data: BlockIn) -> Block:
    """Refuse scans from a device, member or IP range (403 `scan-blocked`) until `expires_at` or a lift."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    block = await blocklist.create(
        db, brand_id=brand_id, data=data, actor=principal.actor, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="antifraud.block",
        object_type="block",
        object_id=block.id,
        after=block,
    )
    await _follower(request).apply_now(db)
    return block


@get("/antifraud/blocks", opt=roles(*READERS), tags=["antifraud"])
async def list_blocks(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    active: bool = True,
    after: int | None = None,
    limit: Limit = 50,
) -> Page:
    """The brand's blocks, active ones by default (`active=false`: expired and lifted ones too)."""
    limit = min(limit, settings.max_page_size)
    items = await blocklist.list_blocks(
        db,
        brand_of(principal_from(request)),
        active_only=active,
        after=after,
        limit=limit + 1,
        now=dt.datetime.now(dt.UTC),
    )
    return page(items, limit, lambda i: i.id)


@post("/antifraud/blocks/{block_id:int}/lift", opt=roles(*WRITERS), status_code=200, tags=["antifraud"])
async def lift_block(request: Request[Any, Any, Any], db: AsyncConnection[Any], block_id: int) -> Block:
    """End a block now; audited."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    block = await blocklist.lift(
        db, brand_id=brand_id, block_id=block_id, actor=principal.actor, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="antifraud.unblock",
        object_type="block",
        object_id=block_id,
        after=block,
    )
    await _follower(request).apply_now(db)
    return block


def _follower(request: Request[Any, Any, Any]) -> RegistryFollower:
    state: AppState = request.app.state.onecode
    return state.registry_follower


TRACERS = (*READERS, Role.FINANCE)


@get("/codes/{serial:str}/trace", opt=roles(*TRACERS), tags=["antifraud"], response_model=None)
async def code_trace(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    serial: Annotated[str, Parameter(max_length=40)],
    format: Literal["json", "epcis"] = "json",  # noqa: A002 - the public query parameter's name
) -> trace.CodeTrace | Response[bytes]:
    """An item's story by its serial: batch, commissioning, case and pallet, shipment, receipt, every scan.

    `format=epcis` gives the same events as a GS1 EPCIS 2.0 JSON-LD document.
    """
    brand_id = brand_of(principal_from(request))
    state: AppState = request.app.state.onecode
    await state.registry_follower.ensure_loaded()
    found = state.registry.find_serial(brand_id, serial)
    if found is None:
        raise NotFound("code", serial)
    facts, path = found
    story = await trace.code_trace(db, facts, path, scan_domain=settings.scan_domain)
    if format == "json":
        return story
    document = trace.epcis_document(story, now=dt.datetime.now(dt.UTC))
    return Response(msgspec.json.encode(document), media_type="application/ld+json")


def antifraud_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            get_clone_rules,
            set_clone_rules,
            patch_clone_rules,
            list_flagged,
            list_flagged_cases,
            review_flag,
            create_block,
            list_blocks,
            lift_block,
            code_trace,
        ],
        guards=[require_token],
    )
