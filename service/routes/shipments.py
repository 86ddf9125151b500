"""Distributors and shipments over HTTP; a distributor's token sees only its own distributor and shipments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Request, Router, get, post, put
from psycopg import AsyncConnection

from antifraud import shipments
from antifraud.shipments import (
    ActivationSummary,
    Distributor,
    DistributorIn,
    Shipment,
    ShipmentIn,
    TerritoryIn,
)
from service import audit
from service.errors import NotFound
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Principal, Role
from service.routes.admin import Limit, page
from service.settings import Settings
from service.state import AppState

SHIPPERS = (Role.BRAND_ADMIN, Role.OPERATIONS)
READERS = (*SHIPPERS, Role.MARKETER, Role.AUDITOR, Role.CUSTOMER_SERVICE, Role.FINANCE)
RECEIVERS = (*SHIPPERS, Role.DISTRIBUTOR)


def _only(principal: Principal) -> uuid.UUID | None:
    """A distributor's scope: its own distributor id; None (everything of the brand) for brand roles."""
    return principal.distributor_id if principal.role is Role.DISTRIBUTOR else None


@post("/distributors", opt=roles(*SHIPPERS), tags=["shipments"])
async def create_distributor(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: DistributorIn
) -> Distributor:
    """A distributor and its authorized sales regions (ISO 3166-2: `CN-ZJ`, or a whole country `CN`)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    distributor = await shipments.create_distributor(db, brand_id=brand_id, data=data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="distributor.create",
        object_type="distributor",
        object_id=distributor.id,
        after=distributor,
    )
    return distributor


@get("/distributors", opt=roles(*READERS, Role.DISTRIBUTOR), tags=["shipments"])
async def list_distributors(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    principal = principal_from(request)
    limit = min(limit, settings.max_page_size)
    items = await shipments.list_distributors(
        db, brand_of(principal), after=after, limit=limit + 1, only_id=_only(principal)
    )
    return page(items, limit, lambda d: d.id)


@get("/distributors/{distributor_id:uuid}", opt=roles(*READERS, Role.DISTRIBUTOR), tags=["shipments"])
async def get_distributor(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], distributor_id: uuid.UUID
) -> Distributor:
    principal = principal_from(request)
    only = _only(principal)
    if only is not None and only != distributor_id:
        raise NotFound("distributor", distributor_id)
    return await shipments.get_distributor(db, brand_of(principal), distributor_id)


@put("/distributors/{distributor_id:uuid}/regions", opt=roles(*SHIPPERS), tags=["shipments"])
async def set_territory(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], distributor_id: uuid.UUID, data: TerritoryIn
) -> Distributor:
    """Replace the distributor's authorized sales regions; audited with before and after."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before, after = await shipments.set_territory(
        db, brand_id=brand_id, distributor_id=distributor_id, data=data
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="distributor.regions",
        object_type="distributor",
        object_id=distributor_id,
        before={"regions": before.regions},
        after={"regions": after.regions},
    )
    # This worker judges diversions by the new territory at once; the others within a second.
    state: AppState = request.app.state.onecode
    await state.registry_follower.apply_now(db)
    return after


@post("/shipments", opt=roles(*SHIPPERS), tags=["shipments"])
async def create_shipment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: ShipmentIn
) -> Shipment:
    """Ship item ranges, cases or pallets to a distributor: their codes come alive (activation)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    shipment = await shipments.ship(
        db, actor=principal.actor, brand_id=brand_id, data=data, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="shipment.create",
        object_type="shipment",
        object_id=shipment.id,
        after={
            "distributor_id": shipment.distributor_id,
            "items": shipment.items,
            "reference": shipment.reference,
        },
    )
    # This worker scans the new codes as activated at once; the others within a second.
    state: AppState = request.app.state.onecode
    await state.registry_follower.apply_now(db)
    return shipment


@get("/shipments", opt=roles(*READERS, Role.DISTRIBUTOR), tags=["shipments"])
async def list_shipments(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
    distributor_id: uuid.UUID | None = None,
    received: bool | None = None,
) -> Page:
    """Shipments newest first, of one distributor or all, received or not yet (`?received=false`)."""
    principal = principal_from(request)
    limit = min(limit, settings.max_page_size)
    items = await shipments.list_shipments(
        db,
        brand_of(principal),
        after=after,
        limit=limit + 1,
        only_distributor=_only(principal),
        distributor_id=distributor_id,
        received=received,
    )
    return page(items, limit, lambda s: s.id)


@get("/shipments/{shipment_id:uuid}", opt=roles(*READERS, Role.DISTRIBUTOR), tags=["shipments"])
async def get_shipment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], shipment_id: uuid.UUID
) -> Shipment:
    principal = principal_from(request)
    return await shipments.get_shipment(
        db, brand_of(principal), shipment_id, only_distributor=_only(principal)
    )


@post("/shipments/{shipment_id:uuid}/receive", opt=roles(*RECEIVERS), status_code=200, tags=["shipments"])
async def receive_shipment(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], shipment_id: uuid.UUID
) -> Shipment:
    """The distributor confirms the goods arrived (once; a second call returns the first receipt)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    shipment, received = await shipments.receive(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        shipment_id=shipment_id,
        only_distributor=_only(principal),
        now=dt.datetime.now(dt.UTC),
    )
    if received:  # a repeated call changes nothing, and says so by the first receipt it returns
        await audit.record(
            db,
            actor=principal.actor,
            brand_id=brand_id,
            action="shipment.receive",
            object_type="shipment",
            object_id=shipment_id,
            after={"received_at": shipment.received_at, "received_by": shipment.received_by},
        )
    return shipment


@get("/batches/{batch_id:uuid}/activation", opt=roles(*READERS), tags=["shipments"])
async def batch_activation(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], batch_id: uuid.UUID
) -> ActivationSummary:
    """How much of the batch is activated, and how often its unactivated codes were scanned (leaks)."""
    return await shipments.activation_summary(db, brand_of(principal_from(request)), batch_id)


def shipments_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_distributor,
            list_distributors,
            get_distributor,
            set_territory,
            create_shipment,
            list_shipments,
            get_shipment,
            receive_shipment,
            batch_activation,
        ],
        guards=[require_token],
    )
