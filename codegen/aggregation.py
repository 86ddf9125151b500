"""Aggregation: cases hold item ranges, pallets hold cases; packed explicitly or by regular packing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg.errors
from psycopg.types.json import Jsonb

from codegen.batches import get_batch
from codegen.errors import InvalidInput, ObjectNotFound, StateConflict
from codegen.gtin import make_sscc, validate_sscc
from codegen.models import (
    Aggregation,
    AggregationIn,
    AggregationLevel,
    AggregationView,
    Batch,
    ItemRange,
    RegularPackingIn,
)
from codegen.registry import Outcome, Verification
from service import audit
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")
MAX_PACKED = 100_000
Resolver = Callable[[str], Verification]


def _check_contents(data: AggregationIn) -> None:
    """Cases hold items and pallets cases, and neither is empty: shipped, an empty one activates nothing."""
    if data.level is AggregationLevel.CASE:
        if data.children_sscc:
            raise InvalidInput("children_sscc", "cases hold items; pallets hold cases")
        if not (data.items or data.serials):
            raise InvalidInput("items", "a case holds at least one item (a range or a serial)")
    else:
        if data.items or data.serials:
            raise InvalidInput("items", "pallets hold cases, not items")
        if not data.children_sscc:
            raise InvalidInput("children_sscc", "a pallet holds at least one case")


async def create_aggregation(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID,
    data: AggregationIn,
    resolve: Resolver,
    scan_domain: str,
) -> AggregationView:
    """Record one case (item ranges and/or scanned serials) or one pallet (child case SSCCs)."""
    validate_sscc(data.sscc)
    _check_contents(data)
    ranges = list(data.items)
    for n, serial in enumerate(data.serials):
        verified = resolve(serial)
        if verified.outcome is not Outcome.GENUINE or verified.facts is None:
            raise InvalidInput(
                f"serials[{n}]", f"not a genuine, issued code of this brand ({verified.outcome})"
            )
        if verified.facts.brand_id != brand_id:
            raise InvalidInput(f"serials[{n}]", "the code belongs to another brand")
        position = verified.facts.position
        ranges.append(ItemRange(batch_id=verified.facts.batch_id, start=position, stop=position + 1))
    try:
        async with conn.transaction():
            aggregation = await _insert(conn, brand_id, data.level, data.sscc, None)
            batches: dict[uuid.UUID, Batch] = {}
            for n, item_range in enumerate(ranges):
                if item_range.batch_id not in batches:
                    batches[item_range.batch_id] = await _packable_batch(
                        conn, brand_id, item_range.batch_id, f"items[{n}]"
                    )
                _check_item_range(batches[item_range.batch_id], item_range, f"items[{n}]")
            await _insert_items(conn, brand_id, aggregation.id, ranges, batches)
            if data.children_sscc:
                cur = await conn.execute(
                    QUERIES["adopt_children"],
                    {"brand_id": brand_id, "parent_id": aggregation.id, "sscc": data.children_sscc},
                )
                if len(await cur.fetchall()) != len(set(data.children_sscc)):
                    raise InvalidInput(
                        "children_sscc", "every child must be an existing, unpacked case of this brand"
                    )
    except psycopg.errors.UniqueViolation:
        raise StateConflict(f"SSCC {data.sscc} is already recorded", field="sscc") from None
    except psycopg.errors.ExclusionViolation:
        raise StateConflict("some items are already packed in another case", field="items") from None
    await _trace(conn, brand_id, aggregation, ranges)
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="aggregation.create",
        object_type="aggregation",
        object_id=aggregation.id,
        after={"aggregation": aggregation, "items": ranges, "children": data.children_sscc},
    )
    return await view(conn, brand_id, aggregation.id, scan_domain=scan_domain)


async def pack_regularly(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, data: RegularPackingIn
) -> list[Aggregation]:
    """Cases of `items_per_case` consecutive positions (and pallets of cases), with generated SSCCs."""
    batch = await _packable_batch(conn, brand_id, data.batch_id, "batch_id")
    first, last = data.start, batch.quantity if data.stop is None else data.stop
    if not first < last <= batch.quantity:
        raise InvalidInput("stop", f"pack positions start < stop <= {batch.quantity} (the batch's size)")
    case_count = -(-(last - first) // data.items_per_case)
    pallet_count = 0 if data.cases_per_pallet is None else -(-case_count // data.cases_per_pallet)
    if case_count + pallet_count > MAX_PACKED:  # each one a row, a label, and memory while packing
        limit = f"at most {MAX_PACKED:,} cases and pallets a request"
        raise InvalidInput("stop", f"{limit}: pack the batch in parts, by start and stop")
    # Refused before any work: otherwise the exclusion constraint would say so only after every case.
    packed = await conn.execute(
        QUERIES["range_packed"], {"batch_seq": batch.seq, "start_index": first, "stop_index": last}
    )
    if await packed.fetchone():
        raise StateConflict("some items of the batch are already packed", field="batch_id")
    numbers = await _free_ssccs(conn, brand_id, data, case_count + pallet_count)
    try:
        async with conn.transaction():
            pallets = await _insert_many(conn, brand_id, AggregationLevel.PALLET, numbers[case_count:], [])
            parents = (
                [pallets[n // data.cases_per_pallet].id for n in range(case_count)]
                if data.cases_per_pallet
                else []
            )
            cases = await _insert_many(conn, brand_id, AggregationLevel.CASE, numbers[:case_count], parents)
            await conn.execute(
                QUERIES["insert_regular_items"],
                {
                    "case_ids": [case.id for case in cases],
                    "brand_id": brand_id,
                    "batch_id": batch.id,
                    "batch_seq": batch.seq,
                    "start_index": first,
                    "stop_index": last,
                    "items_per_case": data.items_per_case,
                },
            )
    except psycopg.errors.ExclusionViolation:
        raise StateConflict("some items of the batch are already packed", field="batch_id") from None
    except psycopg.errors.UniqueViolation:  # a case packed by hand at this moment took one of the numbers
        raise StateConflict("an SSCC was taken while packing: try again", field="sscc") from None
    await conn.execute(
        QUERIES["insert_trace_event"],
        {
            "brand_id": brand_id,
            "event_type": "AggregationEvent",
            "biz_step": "packing",
            "batch_id": batch.id,
            "aggregation_id": None,
            "start_index": first,
            "stop_index": last,
            "payload": Jsonb(
                {"items_per_case": data.items_per_case, "cases": case_count, "pallets": pallet_count}
            ),
        },
    )
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="batch.pack",
        object_type="batch",
        object_id=batch.id,
        after={
            "items_per_case": data.items_per_case,
            "start": first,
            "stop": last,
            "cases": case_count,
            "pallets": pallet_count,
        },
    )
    return pallets or cases


async def _packable_batch(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, batch_id: uuid.UUID, field: str
) -> Batch:
    """A voided batch's codes must never reach a case: it could not be shipped, only mislead."""
    batch = await get_batch(conn, brand_id, batch_id)
    if batch.status == "voided":
        raise StateConflict(f"batch {batch_id} is voided: its codes are never packed", field=field)
    return batch


async def _free_ssccs(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, data: RegularPackingIn, needed: int
) -> list[str]:
    """`needed` SSCCs under the company prefix, from its counter, passing over numbers already recorded
    (a case packed by hand, or under a longer prefix that begins with this one)."""
    ref_digits = 16 - len(data.gs1_company_prefix)
    free: list[str] = []
    while len(free) < needed:
        wanted = needed - len(free)
        cur = await conn.execute(
            QUERIES["reserve_sscc_refs"],
            {"brand_id": brand_id, "company_prefix": data.gs1_company_prefix, "count": wanted},
        )
        row = await cur.fetchone()
        assert row is not None
        first_ref = int(row[0])
        if first_ref + wanted > 10**ref_digits:
            raise InvalidInput("gs1_company_prefix", "no SSCC serial references left under this prefix")
        candidates = [
            make_sscc(data.extension_digit, data.gs1_company_prefix, str(ref).zfill(ref_digits))
            for ref in range(first_ref, first_ref + wanted)
        ]
        cur = await conn.execute(QUERIES["recorded_ssccs"], {"brand_id": brand_id, "sscc": candidates})
        recorded = {sscc for (sscc,) in await cur.fetchall()}
        free += [sscc for sscc in candidates if sscc not in recorded]
    return free


def sscc_url(scan_domain: str, sscc: str) -> str:
    """The label printed on a case or pallet: `https://<scan-domain>/00/<SSCC-18>`."""
    return f"https://{scan_domain.lower()}/00/{validate_sscc(sscc)}"


async def view(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, aggregation_id: uuid.UUID, *, scan_domain: str
) -> AggregationView:
    aggregation = await fetch_one(
        conn,
        QUERIES["get_aggregation"],
        {"brand_id": brand_id, "aggregation_id": aggregation_id},
        Aggregation,
    )
    if aggregation is None:
        raise ObjectNotFound("aggregation", aggregation_id, field="aggregation_id")
    cur = await conn.execute(QUERIES["aggregation_item_ranges"], {"aggregation_id": aggregation_id})
    items = [ItemRange(batch_id=b, start=s, stop=e) for b, s, e in await cur.fetchall()]
    children = await fetch_all(
        conn,
        QUERIES["child_aggregations"],
        {"brand_id": brand_id, "aggregation_id": aggregation_id},
        Aggregation,
    )
    parents = await parent_chain(conn, brand_id, aggregation.parent_id) if aggregation.parent_id else []
    return AggregationView(
        aggregation=aggregation,
        url=sscc_url(scan_domain, aggregation.sscc),
        items=items,
        children=children,
        parents=parents,
    )


async def by_sscc(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, sscc: str, *, scan_domain: str
) -> AggregationView:
    found = await fetch_one(
        conn, QUERIES["get_aggregation_by_sscc"], {"brand_id": brand_id, "sscc": sscc}, Aggregation
    )
    if found is None:
        raise ObjectNotFound("aggregation with SSCC", sscc, field="sscc")
    return await view(conn, brand_id, found.id, scan_domain=scan_domain)


async def parent_chain(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, aggregation_id: uuid.UUID
) -> list[Aggregation]:
    return await fetch_all(
        conn, QUERIES["parent_chain"], {"brand_id": brand_id, "aggregation_id": aggregation_id}, Aggregation
    )


async def parents_of_item(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, batch_id: uuid.UUID, position: int
) -> list[Aggregation]:
    """The case holding an item, then its pallet: innermost first. Empty when the item was never packed."""
    batch = await get_batch(conn, brand_id, batch_id)
    if not 0 <= position < batch.quantity:
        raise InvalidInput("position", f"position must be within 0..{batch.quantity - 1}")
    case = await fetch_one(
        conn,
        QUERIES["parent_of_item"],
        {"brand_id": brand_id, "batch_id": batch_id, "index": position},
        Aggregation,
    )
    return [] if case is None else await parent_chain(conn, brand_id, case.id)


def _check_item_range(batch: Batch, item_range: ItemRange, field: str) -> None:
    if not 0 <= item_range.start < item_range.stop <= batch.quantity:
        raise InvalidInput(field, f"range must lie within the batch's positions 0..{batch.quantity}")


async def _insert(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    level: AggregationLevel,
    sscc: str,
    parent_id: uuid.UUID | None,
) -> Aggregation:
    aggregation = await fetch_one(
        conn,
        QUERIES["insert_aggregation"],
        {"brand_id": brand_id, "level": level.value, "sscc": sscc, "parent_id": parent_id},
        Aggregation,
    )
    assert aggregation is not None
    return aggregation


async def _insert_many(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    level: AggregationLevel,
    ssccs: list[str],
    parent_ids: list[uuid.UUID],
) -> list[Aggregation]:
    """Cases or pallets in one statement, in the order of `ssccs` (`parent_ids`: none, or one each)."""
    if not ssccs:
        return []
    inserted = await fetch_all(
        conn,
        QUERIES["insert_aggregations"],
        {"brand_id": brand_id, "level": level.value, "ssccs": ssccs, "parent_ids": parent_ids or None},
        Aggregation,
    )
    by_sscc = {aggregation.sscc: aggregation for aggregation in inserted}
    return [by_sscc[sscc] for sscc in ssccs]


async def _insert_items(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    aggregation_id: uuid.UUID,
    ranges: list[ItemRange],
    batches: dict[uuid.UUID, Batch],
) -> None:
    if not ranges:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            QUERIES["insert_aggregation_items"],
            [
                {
                    "aggregation_id": aggregation_id,
                    "brand_id": brand_id,
                    "batch_id": r.batch_id,
                    "batch_seq": batches[r.batch_id].seq,
                    "start_index": r.start,
                    "stop_index": r.stop,
                }
                for r in ranges
            ],
        )


async def _trace(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, aggregation: Aggregation, ranges: list[ItemRange]
) -> None:
    await conn.execute(
        QUERIES["insert_trace_event"],
        {
            "brand_id": brand_id,
            "event_type": "AggregationEvent",
            "biz_step": "packing",
            "batch_id": ranges[0].batch_id if ranges else None,
            "aggregation_id": aggregation.id,
            "start_index": None,
            "stop_index": None,
            "payload": Jsonb(
                {
                    "sscc": aggregation.sscc,
                    "level": aggregation.level,
                    "items": [
                        {"batch_id": str(r.batch_id), "start": r.start, "stop": r.stop} for r in ranges
                    ],
                }
            ),
        },
    )
