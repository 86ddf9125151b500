"""Helpers that issue real codes for tests: a brand, a product with a GTIN, a batch, its printed URLs."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import psycopg

from codegen import batches, keyring, products
from codegen.models import Batch, BatchActivation, BatchIn, Product, ProductIn
from service.settings import Settings


class IssuedBatch(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    product: Product
    batch: Batch
    urls: list[str]


async def issue_batch(
    conn: psycopg.AsyncConnection[Any],
    settings: Settings,
    brand_id: uuid.UUID,
    *,
    quantity: int = 100,
    gtin: str | None = "09506000134352",
    name: str = "Demo Lager 500ml",
    activation: BatchActivation = "on_issue",
) -> IssuedBatch:
    product = await products.create_product(
        conn,
        actor="test",
        brand_id=brand_id,
        data=ProductIn(name=name, gtin=gtin, facts={"origin": "Qingdao", "shelf_life_days": 365}),
    )
    batch = await batches.create_batch(
        conn,
        actor="test",
        brand_id=brand_id,
        data=BatchIn(product_id=product.id, quantity=quantity, lot="L2026-11", activation=activation),
        master_key=settings.master_key,
    )
    key = keyring.code_key(await keyring.get_key(conn, brand_id, batch.key_id), settings.all_master_keys)
    brand_code = await _short_code(conn, brand_id)
    urls = [
        url
        for chunk in batches.printed_codes(
            batch,
            product,
            brand_code=brand_code,
            key=key,
            scan_domain=settings.scan_domain,
            start=0,
            stop=quantity,
        )
        for _, _, url in chunk
    ]
    return IssuedBatch(brand_id=brand_id, product=product, batch=batch, urls=urls)


async def _short_code(conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID) -> str:
    cur = await conn.execute("SELECT short_code FROM brands WHERE id = %s", (brand_id,))
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])
