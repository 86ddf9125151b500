"""Distributors and shipments: shipping cases, pallets or item ranges to a distributor activates them.

Codes of an `on_shipment` batch are inert until shipped (a scan before is `not_activated`: a leaked
print file). A shipment records where the items went (the distributor and its authorized sales regions)
so that a scan elsewhere is a diversion. Scan workers learn activations and territories through the code
registry (`activations` rows and `distributors` regions stamp the registry's change sequence), within a
second, or at once in the worker that shipped or changed the regions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import psycopg.errors
from psycopg.types.json import Jsonb

from antifraud import regions
from codegen.batches import get_batch
from codegen.errors import InvalidInput, ObjectNotFound, StateConflict
from codegen.models import ItemRange
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from codegen.models import Batch

QUERIES = load_queries("antifraud.sql", "shipments.sql")
TRACE_QUERIES = load_queries("codegen.sql", "codegen.sql")

# A country (CN), an ISO 3166-2 subdivision (CN-ZJ) or a Chinese prefecture-level city (CN-330100).
Region = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3}|-[0-9]{6})?$")]
Sscc = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")]


class DistributorIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # ISO 3166-2 provinces (CN-ZJ) or whole countries (CN) where the distributor may sell.
    regions: Annotated[list[Region], msgspec.Meta(max_length=500)] = []


class TerritoryIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    regions: Annotated[list[Region], msgspec.Meta(max_length=500)]


class Distributor(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    name: str
    regions: list[str]
    created_at: dt.datetime


class ShipmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    distributor_id: uuid.UUID
    # The delivery note or order number on the paperwork.
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    items: Annotated[list[ItemRange], msgspec.Meta(max_length=1000)] = []
    # Cases or pallets (their items, and a pallet's cases' items).
    sscc: Annotated[list[Sscc], msgspec.Meta(max_length=1000)] = []


class Shipment(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    distributor_id: uuid.UUID
    reference: str | None
    items: int
    shipped_at: dt.datetime
    shipped_by: str
    received_at: dt.datetime | None
    received_by: str | None
    ranges: list[ItemRange] = []


class ActivationSummary(msgspec.Struct, frozen=True):
    batch_id: uuid.UUID
    activation: str
    quantity: int
    activated: int
    # Scans of items no shipment had activated: each one a sign that the print file leaked.
    not_activated_scans: int


class _RangeRow(msgspec.Struct, frozen=True):
    batch_id: uuid.UUID | None
    start_index: int | None
    stop_index: int | None
    sscc: str | None


# --- distributors --------------------------------------------------------------------------------


def _check_regions(codes: list[str], field: str = "regions") -> None:
    unknown = [code for code in codes if not regions.is_territory(code)]
    if unknown:
        raise InvalidInput(
            field,
            f"not countries, ISO 3166-2 subdivisions or Chinese city codes (CN-330100): {', '.join(unknown)}",
        )


async def create_distributor(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, data: DistributorIn
) -> Distributor:
    _check_regions(data.regions)
    try:
        async with conn.transaction():
            found = await fetch_one(
                conn,
                QUERIES["insert_distributor"],
                {"brand_id": brand_id, "name": data.name, "regions": sorted(set(data.regions))},
                Distributor,
            )
    except psycopg.errors.UniqueViolation:
        raise StateConflict(f"a distributor named {data.name!r} exists", field="name") from None
    assert found is not None  # INSERT ... RETURNING always returns the row
    return found


async def get_distributor(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, distributor_id: uuid.UUID
) -> Distributor:
    found = await fetch_one(
        conn,
        QUERIES["get_distributor"],
        {"brand_id": brand_id, "distributor_id": distributor_id},
        Distributor,
    )
    if found is None:
        raise ObjectNotFound("distributor", distributor_id, field="distributor_id")
    return found


async def list_distributors(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    only_id: uuid.UUID | None = None,
) -> list[Distributor]:
    params = {"brand_id": brand_id, "after": after, "limit": limit, "only_id": only_id}
    return await fetch_all(conn, QUERIES["list_distributors"], params, Distributor)


async def set_territory(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, distributor_id: uuid.UUID, data: TerritoryIn
) -> tuple[Distributor, Distributor]:
    """Replace the distributor's regions; returns (before, after) for the audit log.

    Scan workers hold one territory per distributor (the row stamps the registry's change sequence), so a
    change applies to the diversion checks of every item shipped to it, before or after, within a second.
    """
    _check_regions(data.regions)
    before = await get_distributor(conn, brand_id, distributor_id)
    after = await fetch_one(
        conn,
        QUERIES["update_distributor_regions"],
        {"brand_id": brand_id, "distributor_id": distributor_id, "regions": sorted(set(data.regions))},
        Distributor,
    )
    assert after is not None  # the row exists: get_distributor found it
    return before, after


# --- shipments -----------------------------------------------------------------------------------


async def ship(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, data: ShipmentIn, now: dt.datetime
) -> Shipment:
    """Record the shipment and activate its items; an item already shipped makes the whole request fail."""
    if not data.items and not data.sscc:
        raise InvalidInput("items", "ship at least one item range or one case or pallet (sscc)")
    if len(set(data.sscc)) != len(data.sscc):
        raise InvalidInput("sscc", "a case or pallet is named twice")
    distributor = await get_distributor(conn, brand_id, data.distributor_id)
    ranges = [*data.items, *await _ranges_of_aggregations(conn, brand_id, data.sscc)]
    if not ranges:  # cases or pallets with nothing in them (made before empty ones were refused)
        raise InvalidInput("sscc", "these cases or pallets hold no items: nothing to ship")
    batches: dict[uuid.UUID, Batch] = {}
    for n, item_range in enumerate(ranges):
        batch = batches.get(item_range.batch_id) or await get_batch(conn, brand_id, item_range.batch_id)
        batches[batch.id] = batch
        if item_range.start >= item_range.stop:
            raise InvalidInput(f"items[{n}]", "an empty or reversed range: start must be below stop")
        if not 0 <= item_range.start < item_range.stop <= batch.quantity:
            raise InvalidInput(
                f"items[{n}]", f"a range must lie within the batch's positions 0..{batch.quantity}"
            )
        if batch.status == "voided":
            raise StateConflict(f"batch {batch.id} is voided: its codes must never come alive", field="items")
    ranges = _merged(ranges)
    try:
        async with conn.transaction():
            shipment = await fetch_one(
                conn,
                QUERIES["insert_shipment"],
                {
                    "brand_id": brand_id,
                    "distributor_id": distributor.id,
                    "reference": data.reference,
                    "items": sum(r.stop - r.start for r in ranges),
                    "now": now,
                    "actor": actor,
                },
                Shipment,
            )
            assert shipment is not None  # INSERT ... RETURNING always returns the row
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    QUERIES["insert_activation"],
                    [
                        {
                            "brand_id": brand_id,
                            "shipment_id": shipment.id,
                            "distributor_id": distributor.id,
                            "batch_id": r.batch_id,
                            "batch_seq": batches[r.batch_id].seq,
                            "start_index": r.start,
                            "stop_index": r.stop,
                        }
                        for r in ranges
                    ],
                )
            await _trace(conn, brand_id, "shipping", shipment, distributor.id, ranges, now)
    except psycopg.errors.ExclusionViolation:
        raise StateConflict("some of these items were already shipped", field="items") from None
    return msgspec.structs.replace(shipment, ranges=ranges)


async def _ranges_of_aggregations(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, sscc: list[str]
) -> list[ItemRange]:
    if not sscc:
        return []
    rows = await fetch_all(
        conn, QUERIES["aggregation_ranges"], {"brand_id": brand_id, "sscc": sscc}, _RangeRow
    )
    missing = set(sscc) - {row.sscc for row in rows if row.sscc is not None}
    if missing:
        raise ObjectNotFound("case or pallet with SSCC", ", ".join(sorted(missing)), field="sscc")
    return [
        ItemRange(batch_id=row.batch_id, start=row.start_index, stop=row.stop_index)
        for row in rows
        if row.batch_id is not None and row.start_index is not None and row.stop_index is not None
    ]


def _merged(ranges: list[ItemRange]) -> list[ItemRange]:
    """Sorted, with touching ranges joined; ranges that overlap are a mistake in the request."""
    merged: list[ItemRange] = []
    for r in sorted(ranges, key=lambda r: (str(r.batch_id), r.start)):
        last = merged[-1] if merged else None
        if last is not None and last.batch_id == r.batch_id and r.start < last.stop:
            raise InvalidInput("items", "the ranges (or cases) of one shipment overlap")
        if last is not None and last.batch_id == r.batch_id and r.start == last.stop:
            merged[-1] = ItemRange(batch_id=r.batch_id, start=last.start, stop=r.stop)
        else:
            merged.append(r)
    return merged


async def get_shipment(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    shipment_id: uuid.UUID,
    *,
    only_distributor: uuid.UUID | None = None,
) -> Shipment:
    params = {"brand_id": brand_id, "shipment_id": shipment_id, "only_distributor": only_distributor}
    shipment = await fetch_one(conn, QUERIES["get_shipment"], params, Shipment)
    if shipment is None:
        raise ObjectNotFound("shipment", shipment_id)
    ranges = await fetch_all(conn, QUERIES["shipment_ranges"], {"shipment_id": shipment_id}, ItemRange)
    return msgspec.structs.replace(shipment, ranges=ranges)


async def list_shipments(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    only_distributor: uuid.UUID | None = None,
    distributor_id: uuid.UUID | None = None,
    received: bool | None = None,
) -> list[Shipment]:
    """Newest first; a distributor's token sees its own (`only_distributor`), whatever it filters on."""
    params = {
        "brand_id": brand_id,
        "after": after,
        "limit": limit,
        "only_distributor": only_distributor,
        "distributor_id": distributor_id,
        "received": received,
    }
    return await fetch_all(conn, QUERIES["list_shipments"], params, Shipment)


async def receive(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID,
    shipment_id: uuid.UUID,
    only_distributor: uuid.UUID | None,
    now: dt.datetime,
) -> tuple[Shipment, bool]:
    """The distributor confirms receipt (once: a second receipt keeps the first). Returns the shipment
    and whether this call received it."""
    shipment = await get_shipment(conn, brand_id, shipment_id, only_distributor=only_distributor)
    params = {
        "brand_id": brand_id,
        "shipment_id": shipment_id,
        "only_distributor": only_distributor,
        "actor": actor,
        "now": now,
    }
    cur = await conn.execute(QUERIES["receive_shipment"], params)
    received = await cur.fetchone() is not None
    if received:
        await _trace(conn, brand_id, "receiving", shipment, shipment.distributor_id, shipment.ranges, now)
    return await get_shipment(conn, brand_id, shipment_id, only_distributor=only_distributor), received


async def activation_summary(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, batch_id: uuid.UUID
) -> ActivationSummary:
    found = await fetch_one(
        conn, QUERIES["activation_summary"], {"brand_id": brand_id, "batch_id": batch_id}, ActivationSummary
    )
    if found is None:
        raise ObjectNotFound("batch", batch_id, field="batch_id")
    return found


async def _trace(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    biz_step: str,
    shipment: Shipment,
    distributor_id: uuid.UUID,
    ranges: list[ItemRange],
    now: dt.datetime,
) -> None:
    """One traceability event per range (EPCIS ObjectEvent with the bizStep shipping or receiving)."""
    async with conn.cursor() as cursor:
        await cursor.executemany(
            TRACE_QUERIES["insert_trace_event"],
            [
                {
                    "brand_id": brand_id,
                    "event_type": "ObjectEvent",
                    "biz_step": biz_step,
                    "batch_id": r.batch_id,
                    "aggregation_id": None,
                    "start_index": r.start,
                    "stop_index": r.stop,
                    "payload": Jsonb(
                        {
                            "shipment_id": str(shipment.id),
                            "distributor_id": str(distributor_id),
                            "reference": shipment.reference,
                            "at": now.isoformat(),
                        }
                    ),
                }
                for r in ranges
            ],
        )
