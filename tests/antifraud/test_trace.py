"""An item's story (GET /v1/codes/{serial}/trace) and its GS1 EPCIS 2.0 export, schema-validated."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import referencing
from litestar.testing import AsyncTestClient

from service.models import Role
from service.settings import Settings
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

# GS1's EPCIS 2.0 JSON schema, copied unchanged from github.com/gs1/EPCIS (see its README).
EPCIS = Path(__file__).resolve().parent.parent / "data" / "epcis"


def epcis_validator() -> jsonschema.Draft7Validator:
    """Every schema file registered by its $id, so no $ref is fetched from the network."""
    resources = []
    for path in EPCIS.rglob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], referencing.Resource.from_contents(schema)))
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(resources)
    root = json.loads((EPCIS / "EPCIS-JSON-Schema-root.json").read_text())
    return jsonschema.Draft7Validator(root, registry=registry)


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=50, activation="on_shipment")


async def shipped_and_scanned(client: AsyncTestClient[Any], tenant: Tenant, issued: IssuedBatch) -> str:
    """Item 7 packed in a case on a pallet, shipped, received, scanned twice (once located)."""
    headers = tenant.headers(Role.OPERATIONS)
    await client.post(
        "/v1/aggregations:pack",
        json={
            "batch_id": str(issued.batch.id),
            "items_per_case": 10,
            "cases_per_pallet": 5,
            "gs1_company_prefix": "0614141",
        },
        headers=headers,
    )
    distributor = await client.post(
        "/v1/distributors", json={"name": "East", "regions": ["CN-ZJ"]}, headers=headers
    )
    pallet = (await client.get(f"/v1/batches/{issued.batch.id}/items/7/parents", headers=headers)).json()[1]
    shipment = await client.post(
        "/v1/shipments",
        json={"distributor_id": distributor.json()["id"], "sscc": [pallet["sscc"]]},
        headers=headers,
    )
    assert shipment.status_code == 201, shipment.text
    await client.post(f"/v1/shipments/{shipment.json()['id']}/receive", headers=headers)
    location = {"lat": 30.27, "lng": 120.16, "accuracy_m": 20.0}
    for extra in ({"location": location}, {}):
        body = {"code": issued.urls[7], "device_id": f"dev-{uuid.uuid4().hex}", **extra}
        assert (await client.post("/v1/scans", json=body)).status_code == 200
    serial: str = issued.urls[7].rsplit("/", 1)[-1]
    return serial


class TestTrace:
    async def test_the_trace_tells_the_whole_story_in_order(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant, issued: IssuedBatch
    ) -> None:
        serial = await shipped_and_scanned(client, tenant_a, issued)
        response = await client.get(
            f"/v1/codes/{serial.lower()}/trace", headers=tenant_a.headers(Role.AUDITOR)
        )
        assert response.status_code == 200, response.text
        story = response.json()
        assert story["item_uri"] == f"https://id.gs1.org/01/{issued.product.gtin}/21/{serial}"
        assert (story["position"], story["activated"]) == (7, True)
        assert [p["level"] for p in story["parents"]] == ["case", "pallet"]
        assert story["shipment"]["received_at"] is not None
        assert [s["verdict"] for s in story["scans"]] == ["genuine_first", "genuine_repeat"]
        assert story["scans"][0]["region"] == "CN-ZJ"
        kinds = [e["kind"] for e in story["events"]]
        assert kinds == ["commissioning", "packing", "packing", "shipping", "receiving", "scan", "scan"]
        assert (await client.get(f"/v1/codes/{serial}/trace", headers=tenant_b.headers())).status_code == 404
        unknown = await client.get("/v1/codes/AAAAAAAAAAAAAAAAAAAA/trace", headers=tenant_a.headers())
        assert unknown.status_code == 404
        assert (
            await client.get(f"/v1/codes/{serial}/trace", headers=tenant_a.headers(Role.POINT_OF_SALE))
        ).status_code == 403

    async def test_the_epcis_export_validates_against_gs1s_schema(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        serial = await shipped_and_scanned(client, tenant_a, issued)
        response = await client.get(
            f"/v1/codes/{serial}/trace", params={"format": "epcis"}, headers=tenant_a.headers()
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/ld+json")
        document = response.json()
        validator = epcis_validator()
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == []
        events = document["epcisBody"]["eventList"]
        assert [(e["type"], e.get("bizStep")) for e in events] == [
            ("ObjectEvent", "commissioning"),
            ("AggregationEvent", "packing"),
            ("AggregationEvent", "packing"),
            ("ObjectEvent", "shipping"),
            ("ObjectEvent", "receiving"),
            ("ObjectEvent", "https://onecode.dev/voc/bizStep/consumer_scan"),
            ("ObjectEvent", "https://onecode.dev/voc/bizStep/consumer_scan"),
        ]
        assert events[5]["readPoint"] == {"id": "geo:30.27,120.16"}
        assert len({e["eventID"] for e in events}) == len(events)
        # The item into its case, and that case (not the item) onto the pallet.
        into_case, onto_pallet = events[1], events[2]
        assert into_case["childEPCs"] == [events[0]["epcList"][0]]
        assert onto_pallet["childEPCs"] == [into_case["parentID"]]
        assert onto_pallet["parentID"] != into_case["parentID"]

    def test_the_validator_refuses_a_broken_document(self) -> None:
        """The schema check can fail: GS1's own example with an unknown action word does."""
        example = json.loads((EPCIS / "examples" / "Example_9.6.1-ObjectEvent.jsonld").read_text())
        validator = epcis_validator()
        assert list(validator.iter_errors(example)) == []
        example["epcisBody"]["eventList"][0]["action"] = "TELEPORT"
        assert list(validator.iter_errors(example)) != []
