"""The console's products, batches and shipments pages (operations' daily work before goods leave).

Reads go through the domain packages or the console's own queries; every write (new product, new batch,
void, export, ship, receive) is a call to the JSON API from the page.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get
from psycopg import AsyncConnection

from antifraud import shipments
from service.db import fetch_all
from service.guards import brand_of, principal_from, roles
from service.models import Role
from service.queries import load_queries
from service.routes import codes, console_campaigns, exports
from service.routes import shipments as shipment_routes
from service.routes.console_common import render, texts, who

QUERIES = load_queries("service.sql", "console.sql")
LISTED = 200


class RecentBatch(msgspec.Struct, frozen=True):
    id: uuid.UUID
    seq: int
    lot: str | None
    quantity: int
    production_date: dt.date | None
    status: str
    activation: str
    created_at: dt.datetime
    product_name: str
    activated: int
    cases: int


class RecentShipment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    reference: str | None
    items: int
    shipped_at: dt.datetime
    received_at: dt.datetime | None
    distributor_name: str


@get("/console/products", opt=roles(*codes.READERS), include_in_schema=False)
async def products_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Products and the newest batches: create either, export a batch's codes with progress, void one."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    return render(
        request,
        "console_products.html",
        title=texts(request)["products_nav"],
        user=await who(db, principal),
        products=await console_campaigns.brand_products(db, brand_id),
        batches=await fetch_all(
            db, QUERIES["recent_batches"], {"brand_id": brand_id, "limit": LISTED}, RecentBatch
        ),
        may_add_product=principal.role in codes.PRODUCT_WRITERS,
        may_add_batch=principal.role in codes.BATCH_WRITERS,
        may_export=principal.role in exports.EXPORTERS,
        may_void=principal.role is Role.BRAND_ADMIN,
    )


@get("/console/shipments", opt=roles(*shipment_routes.READERS), include_in_schema=False)
async def shipments_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Distributors with their territories, shipments newest first, and the form that ships (activates)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    may_ship = principal.role in shipment_routes.SHIPPERS
    return render(
        request,
        "console_shipments.html",
        title=texts(request)["shipments_nav"],
        user=await who(db, principal),
        distributors=await shipments.list_distributors(db, brand_id, after=None, limit=LISTED),
        shipments=await recent_shipments(db, brand_id, only_distributor=None),
        batches=await fetch_all(
            db, QUERIES["recent_batches"], {"brand_id": brand_id, "limit": LISTED}, RecentBatch
        )
        if may_ship
        else [],
        may_ship=may_ship,
        may_receive=may_ship,
    )


async def recent_shipments(
    db: AsyncConnection[Any], brand_id: uuid.UUID, *, only_distributor: uuid.UUID | None
) -> list[RecentShipment]:
    params = {"brand_id": brand_id, "only_distributor": only_distributor, "limit": LISTED}
    return await fetch_all(db, QUERIES["recent_shipments"], params, RecentShipment)


PAGES = [products_page, shipments_page]
