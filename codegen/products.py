"""Products of a brand: the GTIN that codes carry, and the facts the consumer page shows."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg.errors
from psycopg.types.json import Jsonb

from codegen.errors import ObjectNotFound, StateConflict
from codegen.gtin import normalize_gtin
from codegen.models import Product, ProductIn, ProductPatch
from service import audit
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")


async def create_product(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, data: ProductIn
) -> Product:
    gtin = None if data.gtin is None else normalize_gtin(data.gtin)
    if gtin is not None:
        await conn.execute(QUERIES["wait_for_gs1_claims"])
        cur = await conn.execute(QUERIES["gtin_claimed_elsewhere"], {"brand_id": brand_id, "gtin": gtin})
        if (await cur.fetchone() or (False,))[0]:
            raise StateConflict("the GTIN is under another brand's GS1 company prefix", field="gtin")
    try:
        async with conn.transaction():
            product = await fetch_one(
                conn,
                QUERIES["insert_product"],
                {
                    "brand_id": brand_id,
                    "gtin": gtin,
                    "name": data.name,
                    "sku": data.sku,
                    "image_url": data.image_url,
                    "attributes": Jsonb(data.attributes),
                    "facts": Jsonb(data.facts),
                },
                Product,
            )
    except psycopg.errors.UniqueViolation as exc:
        field = "gtin" if exc.diag.constraint_name == "products_gtin_key" else "sku"
        raise StateConflict(f"a product with this {field} already exists", field=field) from None
    assert product is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="product.create",
        object_type="product",
        object_id=product.id,
        after=product,
    )
    return product


async def get_product(conn: AsyncConnection[Any], brand_id: uuid.UUID, product_id: uuid.UUID) -> Product:
    product = await fetch_one(
        conn, QUERIES["get_product"], {"brand_id": brand_id, "product_id": product_id}, Product
    )
    if product is None:
        raise ObjectNotFound("product", product_id, field="product_id")
    return product


async def get_product_by_gtin(conn: AsyncConnection[Any], brand_id: uuid.UUID, gtin: str) -> Product:
    product = await fetch_one(
        conn, QUERIES["get_product_by_gtin"], {"brand_id": brand_id, "gtin": normalize_gtin(gtin)}, Product
    )
    if product is None:
        raise ObjectNotFound("product with GTIN", gtin, field="gtin")
    return product


async def count_brand_products(conn: AsyncConnection[Any], brand_id: uuid.UUID, ids: set[uuid.UUID]) -> int:
    """How many of `ids` are the brand's products: a rule naming another's (or none) must be refused."""
    cur = await conn.execute(QUERIES["count_brand_products"], {"brand_id": brand_id, "ids": list(ids)})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def list_products(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Product]:
    return await fetch_all(
        conn, QUERIES["list_products"], {"brand_id": brand_id, "after": after, "limit": limit}, Product
    )


async def update_product(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, product_id: uuid.UUID, patch: ProductPatch
) -> Product:
    before = await get_product(conn, brand_id, product_id)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    merged = msgspec.structs.asdict(before) | changes
    try:
        async with conn.transaction():
            after = await fetch_one(
                conn,
                QUERIES["update_product"],
                {
                    "brand_id": brand_id,
                    "product_id": product_id,
                    "name": merged["name"],
                    "sku": merged["sku"],
                    "image_url": merged["image_url"],
                    "attributes": Jsonb(merged["attributes"]),
                    "facts": Jsonb(merged["facts"]),
                },
                Product,
            )
    except psycopg.errors.UniqueViolation:
        raise StateConflict("a product with this sku already exists", field="sku") from None
    assert after is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="product.update",
        object_type="product",
        object_id=product_id,
        before=before,
        after=after,
    )
    return after


async def delete_product(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    await lock_definitions(conn, brand_id)  # its check and a rule naming it cannot pass each other
    before = await get_product(conn, brand_id, product_id)
    cur = await conn.execute(QUERIES["product_referrers"], {"brand_id": brand_id, "product_id": product_id})
    if referrers := [referrer for (referrer,) in await cur.fetchall()]:
        named_by = ", ".join(referrers)
        raise StateConflict(f"the product is named by {named_by}: change them first", field="product_id")
    cur = await conn.execute(QUERIES["delete_product"], {"brand_id": brand_id, "product_id": product_id})
    if await cur.fetchone() is None:
        raise StateConflict("the product has batches: printed codes still point at it", field="product_id")
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="product.delete",
        object_type="product",
        object_id=product_id,
        before=before,
    )
