"""Admin API for code issuance: products, brand keys, batches, aggregation and print exports."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.params import Parameter
from psycopg import AsyncConnection

from codegen import aggregation, batches, keyring, products
from codegen.models import (
    Aggregation,
    AggregationIn,
    AggregationView,
    Batch,
    BatchIn,
    BatchStatus,
    KeyInfo,
    Product,
    ProductIn,
    ProductPatch,
    RegularPackingIn,
)
from service import audit
from service.guards import ANY_BRAND_ROLE, brand_of, principal_from, require_token, roles
from service.models import Page, Role
from service.routes import exports
from service.routes.admin import Limit, page
from service.settings import Settings
from service.state import AppState

READERS = ANY_BRAND_ROLE - {Role.DISTRIBUTOR, Role.POINT_OF_SALE}
PRODUCT_WRITERS = (Role.BRAND_ADMIN, Role.MARKETER, Role.OPERATIONS)
BATCH_WRITERS = (Role.BRAND_ADMIN, Role.OPERATIONS)


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state.onecode
    return state


@post("/products", opt=roles(*PRODUCT_WRITERS), tags=["products"])
async def create_product(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: ProductIn
) -> Product:
    principal = principal_from(request)
    return await products.create_product(db, actor=principal.actor, brand_id=brand_of(principal), data=data)


@get("/products", opt=roles(*READERS), tags=["products"])
async def list_products(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    limit = min(limit, settings.max_page_size)
    items = await products.list_products(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda p: p.id)


@get("/products/{product_id:uuid}", opt=roles(*READERS), tags=["products"])
async def get_product(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], product_id: uuid.UUID
) -> Product:
    return await products.get_product(db, brand_of(principal_from(request)), product_id)


@patch("/products/{product_id:uuid}", opt=roles(*PRODUCT_WRITERS), tags=["products"])
async def update_product(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], product_id: uuid.UUID, data: ProductPatch
) -> Product:
    principal = principal_from(request)
    return await products.update_product(
        db, actor=principal.actor, brand_id=brand_of(principal), product_id=product_id, patch=data
    )


@delete("/products/{product_id:uuid}", opt=roles(Role.BRAND_ADMIN), tags=["products"])
async def delete_product(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], product_id: uuid.UUID
) -> None:
    principal = principal_from(request)
    await products.delete_product(
        db, actor=principal.actor, brand_id=brand_of(principal), product_id=product_id
    )


@get(
    "/brands/{brand_id:uuid}/keys",
    opt=roles(Role.BRAND_ADMIN, Role.AUDITOR, Role.PLATFORM_ADMIN),
    tags=["keys"],
)
async def list_keys(db: AsyncConnection[Any], brand_id: uuid.UUID) -> list[KeyInfo]:
    return keyring.key_infos(await keyring.list_keys(db, brand_id))


@post(
    "/brands/{brand_id:uuid}/keys:rotate",
    opt=roles(Role.BRAND_ADMIN, Role.PLATFORM_ADMIN),
    status_code=201,
    tags=["keys"],
)
async def rotate_keys(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID
) -> list[KeyInfo]:
    """Add a new brand key; new batches use it, codes printed under older keys keep verifying."""
    await keyring.current_key(db, brand_id, settings.master_key)  # the first key, if the brand has none
    key = await keyring.rotate(db, brand_id, settings.master_key)
    await audit.record(
        db,
        actor=principal_from(request).actor,
        brand_id=brand_id,
        action="key.rotate",
        object_type="brand_key",
        object_id=f"{brand_id}:{key.key_id}",
        after={"key_id": key.key_id},
    )
    return keyring.key_infos(await keyring.list_keys(db, brand_id))


@get("/brands/{brand_id:uuid}/public-keys", tags=["keys"])
async def public_keys(db: AsyncConnection[Any], brand_id: uuid.UUID) -> Response[dict[str, Any]]:
    """The brand's Ed25519 public keys (JWK set) for verifying signed codes offline. Public, cacheable."""
    jwks = await keyring.public_jwks(db, brand_id)
    return Response(jwks, headers={"Cache-Control": "public, max-age=300"})


@post("/batches", opt=roles(*BATCH_WRITERS), tags=["batches"])
async def create_batch(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: BatchIn
) -> Batch:
    """Reserve the batch's index range (one row, no per-code rows) and record its commissioning."""
    principal = principal_from(request)
    return await batches.create_batch(
        db, actor=principal.actor, brand_id=brand_of(principal), data=data, master_key=settings.master_key
    )


@get("/batches", opt=roles(*READERS), tags=["batches"])
async def list_batches(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    product_id: uuid.UUID | None = None,
    after: int | None = None,
    limit: Limit = 50,
) -> Page:
    limit = min(limit, settings.max_page_size)
    items = await batches.list_batches(
        db, brand_of(principal_from(request)), product_id=product_id, after=after, limit=limit + 1
    )
    return page(items, limit, lambda b: b.seq)


@get("/batches/{batch_id:uuid}", opt=roles(*READERS), tags=["batches"])
async def get_batch(request: Request[Any, Any, Any], db: AsyncConnection[Any], batch_id: uuid.UUID) -> Batch:
    return await batches.get_batch(db, brand_of(principal_from(request)), batch_id)


@post("/batches/{batch_id:uuid}/void", opt=roles(Role.BRAND_ADMIN), status_code=200, tags=["batches"])
async def void_batch(request: Request[Any, Any, Any], db: AsyncConnection[Any], batch_id: uuid.UUID) -> Batch:
    """Void a batch: every one of its codes then fails verification with the reason `voided`."""
    principal = principal_from(request)
    batch = await batches.set_status(
        db, actor=principal.actor, brand_id=brand_of(principal), batch_id=batch_id, status=BatchStatus.VOIDED
    )
    # A void is a recall: this worker refuses the codes from the next scan on, the others within a second.
    await _state(request).registry_follower.apply_now(db)
    return batch


@post("/aggregations", opt=roles(*BATCH_WRITERS), tags=["aggregation"])
async def create_aggregation(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: AggregationIn
) -> AggregationView:
    """A packing station records a case (item ranges or scanned serials) or a pallet (case SSCCs)."""
    principal = principal_from(request)
    registry = _state(request).registry
    await registry.refresh(db)
    return await aggregation.create_aggregation(
        db,
        actor=principal.actor,
        brand_id=brand_of(principal),
        data=data,
        resolve=registry.verify,
        scan_domain=settings.scan_domain,
    )


@post("/aggregations:pack", opt=roles(*BATCH_WRITERS), tags=["aggregation"])
async def pack_batch(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: RegularPackingIn
) -> list[Aggregation]:
    """Regular packing: the whole batch, N items per case (M cases per pallet), SSCCs generated."""
    principal = principal_from(request)
    return await aggregation.pack_regularly(
        db, actor=principal.actor, brand_id=brand_of(principal), data=data
    )


@get("/aggregations/{aggregation_id:uuid}", opt=roles(*READERS), tags=["aggregation"])
async def get_aggregation(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, aggregation_id: uuid.UUID
) -> AggregationView:
    return await aggregation.view(
        db, brand_of(principal_from(request)), aggregation_id, scan_domain=settings.scan_domain
    )


@get("/aggregations", opt=roles(*READERS), tags=["aggregation"])
async def find_aggregation(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    sscc: Annotated[str, Parameter(pattern=r"^[0-9]{18}$")],
) -> AggregationView:
    return await aggregation.by_sscc(
        db, brand_of(principal_from(request)), sscc, scan_domain=settings.scan_domain
    )


@get("/batches/{batch_id:uuid}/items/{position:int}/parents", opt=roles(*READERS), tags=["aggregation"])
async def item_parents(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], batch_id: uuid.UUID, position: int
) -> list[Aggregation]:
    """The case and pallet an item was packed in, innermost first."""
    return await aggregation.parents_of_item(db, brand_of(principal_from(request)), batch_id, position)


def codes_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_product,
            list_products,
            get_product,
            update_product,
            delete_product,
            list_keys,
            rotate_keys,
            create_batch,
            list_batches,
            get_batch,
            void_batch,
            create_aggregation,
            pack_batch,
            get_aggregation,
            find_aggregation,
            item_parents,
            exports.export_codes,
        ],
        guards=[require_token],
    )


def public_router() -> Router:
    return Router("/v1", route_handlers=[public_keys])
