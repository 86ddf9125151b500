"""Traceability: one item's whole story (commissioning, packing, shipping, receipt, every scan), and
the same events as a GS1 EPCIS 2.0 JSON-LD document.

Items are identified as GS1 Digital Link URIs (`https://id.gs1.org/01/<GTIN>/21/<serial>`; the scan URL
for codes without a GTIN), cases and pallets as `https://id.gs1.org/00/<SSCC>`. Consumer scans are
`ObjectEvent`s with OneCode's own bizStep URI, their read point the rounded location as a `geo:` URI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from codegen import aggregation
from codegen.batches import get_batch
from codegen.models import Aggregation, Batch
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from codegen.registry import CodeFacts

QUERIES = load_queries("antifraud.sql", "trace.sql")
MAX_SCANS = 1000
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
# CBV has no step for a consumer scanning a pack; EPCIS 2.0 allows a URI of one's own.
SCAN_BIZ_STEP = "https://onecode.dev/voc/bizStep/consumer_scan"

EventKind = Literal["commissioning", "packing", "shipping", "receiving", "scan"]


class ItemShipment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    distributor_id: uuid.UUID
    distributor_name: str
    regions: list[str]
    reference: str | None
    shipped_at: dt.datetime
    received_at: dt.datetime | None


class ItemScan(msgspec.Struct, frozen=True):
    id: uuid.UUID
    scanned_at: dt.datetime
    verdict: str
    region: str | None
    lat: float | None
    lng: float | None
    diverted: bool
    by_member: bool


class TraceEvent(msgspec.Struct, frozen=True, kw_only=True):
    kind: EventKind
    at: dt.datetime
    # packing: the case or pallet SSCC; shipping/receiving: the shipment; scan: the scan.
    ref: str | None = None
    detail: dict[str, Any] = {}


class CodeTrace(msgspec.Struct, frozen=True, kw_only=True):
    serial: str
    item_uri: str
    product_id: uuid.UUID
    product_name: str
    gtin: str | None
    batch: Batch
    position: int
    activated: bool
    # Innermost first: the case, then its pallet.
    parents: list[Aggregation]
    shipment: ItemShipment | None
    scans: list[ItemScan]
    # Everything above in time order, as the EPCIS export has it.
    events: list[TraceEvent]


def item_uri(facts: CodeFacts, path: str, scan_domain: str) -> str:
    """The item's identifier: GS1's canonical Digital Link when it has a GTIN, else its scan URL."""
    serial = path.rsplit("/", 1)[-1]
    if facts.gtin:
        return f"https://id.gs1.org/01/{facts.gtin}/21/{serial}"
    return f"https://{scan_domain}{path}"


async def code_trace(
    conn: AsyncConnection[Any], facts: CodeFacts, path: str, *, scan_domain: str
) -> CodeTrace:
    batch = await get_batch(conn, facts.brand_id, facts.batch_id)
    parents = await aggregation.parents_of_item(conn, facts.brand_id, facts.batch_id, facts.position)
    where = {"brand_id": facts.brand_id, "batch_id": facts.batch_id, "position": facts.position}
    shipment = await fetch_one(conn, QUERIES["item_shipment"], where, ItemShipment)
    scans = await fetch_all(
        conn,
        QUERIES["item_scans"],
        {"brand_id": facts.brand_id, "key_id": facts.key_id, "code_index": facts.index, "limit": MAX_SCANS},
        ItemScan,
    )
    events = [TraceEvent(kind="commissioning", at=batch.created_at, detail={"lot": batch.lot})]
    events += [
        TraceEvent(kind="packing", at=a.created_at, ref=a.sscc, detail={"level": a.level}) for a in parents
    ]
    if shipment is not None:
        shipped = {"distributor_id": str(shipment.distributor_id), "distributor": shipment.distributor_name}
        events.append(
            TraceEvent(kind="shipping", at=shipment.shipped_at, ref=str(shipment.id), detail=shipped)
        )
        if shipment.received_at is not None:
            events.append(
                TraceEvent(kind="receiving", at=shipment.received_at, ref=str(shipment.id), detail=shipped)
            )
    events += [
        TraceEvent(
            kind="scan",
            at=s.scanned_at,
            ref=str(s.id),
            detail={"verdict": s.verdict, "region": s.region, "diverted": s.diverted},
        )
        for s in scans
    ]
    events.sort(key=lambda e: e.at)
    return CodeTrace(
        serial=path.rsplit("/", 1)[-1],
        item_uri=item_uri(facts, path, scan_domain),
        product_id=facts.product_id,
        product_name=facts.product_name,
        gtin=facts.gtin,
        batch=batch,
        position=facts.position,
        activated=facts.activated,
        parents=parents,
        shipment=shipment,
        scans=scans,
        events=events,
    )


def epcis_document(trace: CodeTrace, *, now: dt.datetime) -> dict[str, Any]:
    """The trace as an EPCIS 2.0 document (validated in tests against GS1's JSON schema)."""
    events: list[dict[str, Any]] = []
    scans = {str(s.id): s for s in trace.scans}
    case = next((f"https://id.gs1.org/00/{p.sscc}" for p in trace.parents if p.level == "case"), None)
    for event in trace.events:
        if event.kind == "packing":
            # The item went into its case, and the case onto the pallet.
            child = case if event.detail.get("level") == "pallet" and case is not None else trace.item_uri
            body: dict[str, Any] = {
                "type": "AggregationEvent",
                "action": "ADD",
                "bizStep": "packing",
                "parentID": f"https://id.gs1.org/00/{event.ref}",
                "childEPCs": [child],
            }
        else:
            body = {"type": "ObjectEvent", "epcList": [trace.item_uri], **_object_event(event, trace, scans)}
        when = event.at.astimezone(dt.UTC)
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # A stable id per event, so that a re-export is recognised as the same events.
        digest = hashlib.sha256(f"{trace.item_uri}|{event.kind}|{event.ref}|{stamp}".encode()).hexdigest()
        events.append(
            {
                "eventID": f"ni:///sha-256;{digest}?ver=CBV2.0",
                "eventTime": stamp,
                "eventTimeZoneOffset": "+00:00",
                **body,
            }
        )
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": now.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {"eventList": events},
    }


def _object_event(event: TraceEvent, trace: CodeTrace, scans: dict[str, ItemScan]) -> dict[str, Any]:
    if event.kind == "commissioning":
        lot = {"cbvmda:lotNumber": trace.batch.lot} if trace.batch.lot else {}
        return {
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            **({"ilmd": lot} if lot else {}),
        }
    if event.kind == "shipping":
        return {"action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit"}
    if event.kind == "receiving":
        return {"action": "OBSERVE", "bizStep": "receiving", "disposition": "in_progress"}
    scan = scans.get(event.ref or "")
    found: dict[str, Any] = {"action": "OBSERVE", "bizStep": SCAN_BIZ_STEP}
    if scan is not None and scan.lat is not None and scan.lng is not None:
        found["readPoint"] = {"id": f"geo:{scan.lat:.2f},{scan.lng:.2f}"}
    return found
