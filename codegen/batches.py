"""Batches: a reserved range of item indices under one brand key. Issuing 10 million codes writes one row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from codegen import codeformat, keyring
from codegen.errors import InvalidInput, ObjectNotFound, StateConflict
from codegen.models import Batch, BatchIn, BatchStatus, Product
from codegen.products import get_product
from service import audit
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")

# An issued code as printed: its position in the batch (0-based), serial and full URL.
PrintedCode = tuple[int, str, str]


async def create_batch(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, data: BatchIn, master_key: bytes
) -> Batch:
    """Reserve `quantity` indices under the newest (or the named) key and record the commissioning."""
    product = await get_product(conn, brand_id, data.product_id)
    if data.key_id is None:
        key = await keyring.current_key(conn, brand_id, master_key)
    else:
        key = await keyring.get_key(conn, brand_id, data.key_id)
    cur = await conn.execute(
        QUERIES["reserve_range"], {"brand_id": brand_id, "key_id": key.key_id, "quantity": data.quantity}
    )
    reserved = await cur.fetchone()
    if reserved is None:
        raise StateConflict(
            f"key {key.key_id} has {2**32 - key.next_index} codes left; rotate the brand key",
            field="quantity",
        )
    batch = await fetch_one(
        conn,
        QUERIES["insert_batch"],
        {
            "brand_id": brand_id,
            "product_id": product.id,
            "key_id": key.key_id,
            "start_index": reserved[0],
            "quantity": data.quantity,
            "lot": data.lot,
            "production_date": data.production_date,
            "line": data.line,
            "signed": data.signed,
            "activation": data.activation,
        },
        Batch,
    )
    assert batch is not None
    await conn.execute(
        QUERIES["insert_trace_event"],
        {
            "brand_id": brand_id,
            "event_type": "ObjectEvent",
            "biz_step": "commissioning",
            "batch_id": batch.id,
            "aggregation_id": None,
            "start_index": 0,
            "stop_index": batch.quantity,
            "payload": Jsonb({"action": "ADD", "gtin": product.gtin, "lot": batch.lot, "line": batch.line}),
        },
    )
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="batch.create",
        object_type="batch",
        object_id=batch.id,
        after=batch,
    )
    return batch


async def get_batch(conn: AsyncConnection[Any], brand_id: uuid.UUID, batch_id: uuid.UUID) -> Batch:
    batch = await fetch_one(conn, QUERIES["get_batch"], {"brand_id": brand_id, "batch_id": batch_id}, Batch)
    if batch is None:
        raise ObjectNotFound("batch", batch_id, field="batch_id")
    return batch


async def list_batches(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    product_id: uuid.UUID | None,
    after: int | None,
    limit: int,
) -> list[Batch]:
    return await fetch_all(
        conn,
        QUERIES["list_batches"],
        {"brand_id": brand_id, "product_id": product_id, "after": after, "limit": limit},
        Batch,
    )


async def set_status(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, batch_id: uuid.UUID, status: BatchStatus
) -> Batch:
    """Move a batch to `exported` or `voided`; a voided batch never comes back (its codes stay dead)."""
    before = await get_batch(conn, brand_id, batch_id)
    after = await fetch_one(
        conn,
        QUERIES["set_batch_status"],
        {"brand_id": brand_id, "batch_id": batch_id, "status": status.value},
        Batch,
    )
    if after is None:
        raise StateConflict("the batch is voided", field="batch_id")
    if after.status != before.status:
        await audit.record(
            conn,
            actor=actor,
            brand_id=brand_id,
            action=f"batch.{status.value}",
            object_type="batch",
            object_id=batch_id,
            before=before,
            after=after,
        )
    return after


def check_range(batch: Batch, start: int | None, stop: int | None) -> tuple[int, int]:
    """Positions [start, stop) within the batch, defaulting to all of it."""
    first = 0 if start is None else start
    last = batch.quantity if stop is None else stop
    if not 0 <= first < batch.quantity:
        raise InvalidInput("start", f"start must be within 0..{batch.quantity - 1}")
    if not first < last <= batch.quantity:
        raise InvalidInput("stop", f"stop must be within {first + 1}..{batch.quantity}")
    return first, last


def printed_codes(
    batch: Batch,
    product: Product,
    *,
    brand_code: str,
    key: codeformat.CodeKey,
    scan_domain: str,
    start: int,
    stop: int,
    signing_key: bytes | None = None,
) -> Iterator[list[PrintedCode]]:
    """The batch's codes at positions [start, stop), in chunks, in constant memory."""
    chunks = codeformat.iter_codes(
        key,
        scan_domain=scan_domain,
        gtin=product.gtin,
        brand_code=None if product.gtin else brand_code,
        start=batch.start_index + start,
        stop=batch.start_index + stop,
    )
    offset = batch.start_index
    for chunk in chunks:
        if signing_key is None:
            yield [(index - offset, serial, url) for index, serial, url in chunk]
        else:
            yield [
                (index - offset, serial, codeformat.sign_code(signing_key, url))
                for index, serial, url in chunk
            ]
