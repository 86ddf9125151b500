"""Shipping an `on_issue` batch records where its items went: live all along, diverted when sold elsewhere."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from service.settings import Settings
from tests.antifraud.test_shipments import GUANGZHOU, HANGZHOU, distributor, scan, ship
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=100, activation="on_issue")


class TestOnIssueShipments:
    async def test_a_shipped_item_scanned_outside_the_territory_is_a_diversion_of_its_distributor(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Positions 0..50 shipped to East China: one scanned in Guangzhou is diverted, one in Hangzhou is
        not; an unshipped position is live with no distributor."""
        east = await distributor(client, tenant_a)
        shipped = await ship(client, tenant_a, east, issued.batch.id, 0, 50)
        assert shipped.status_code == 201, shipped.text
        verdicts = [
            (await scan(client, issued.urls[1], location=GUANGZHOU))["verdict"],
            (await scan(client, issued.urls[2], location=HANGZHOU))["verdict"],
            (await scan(client, issued.urls[60], location=GUANGZHOU))["verdict"],
        ]
        assert verdicts == ["genuine_first"] * 3
        cur = await db.execute(
            "SELECT s.code_index - b.start_index, s.region, s.distributor_id::text, s.diverted"
            " FROM scans s JOIN batches b ON b.id = s.batch_id ORDER BY s.scanned_at"
        )
        assert await cur.fetchall() == [
            (1, "CN-GD", east, True),
            (2, "CN-ZJ", east, False),
            (60, "CN-GD", None, False),
        ]
        report = await client.get("/v1/reports/diversion", headers=tenant_a.headers(Role.OPERATIONS))
        assert [(e["position"], e["distributor_id"]) for e in report.json()["items"]] == [(1, east)]

    async def test_the_activation_summary_counts_every_code_of_the_batch_as_live(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        """An on_issue batch of 100 with half of it shipped: all 100 codes are live."""
        shipped = await ship(client, tenant_a, await distributor(client, tenant_a), issued.batch.id, 0, 50)
        assert shipped.status_code == 201, shipped.text
        summary = await client.get(f"/v1/batches/{issued.batch.id}/activation", headers=tenant_a.headers())
        assert summary.json() == {
            "batch_id": str(issued.batch.id),
            "activation": "on_issue",
            "quantity": 100,
            "activated": 100,
            "not_activated_scans": 0,
        }
