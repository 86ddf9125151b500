"""A distributor's new territory judges the scans of its shipped items on every worker within a second."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from codegen.registry import CodeRegistry
from service.app import create_app
from service.settings import Settings
from tests.antifraud.test_shipments import distributor, scan, ship
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

NINGBO = {"lat": 29.87, "lng": 121.55, "accuracy_m": 50.0}
SHENZHEN = {"lat": 22.54, "lng": 114.06, "accuracy_m": 50.0}
# Beijing, Hangzhou and Shenzhen; then the whole of Zhejiang instead.
CITIES = ["CN-110100", "CN-330100", "CN-440300"]


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20, activation="on_shipment")


@pytest.fixture
async def other_worker(settings: Settings) -> Any:
    """A second app on the same database and Redis: another worker with its own registry copy."""
    async with AsyncTestClient(app=create_app(settings)) as other:
        yield other


def registry_of(client: AsyncTestClient[Litestar]) -> CodeRegistry:
    registry: CodeRegistry = client.app.state.onecode.registry
    return registry


async def territory_when_loaded(
    client: AsyncTestClient[Litestar], url: str, expected: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The territory the worker's registry judges the code by, once it is `expected` or after 5 s (None:
    the worker does not know the code yet)."""
    deadline = time.monotonic() + 5.0
    while True:
        facts = registry_of(client).verify(url).facts
        territory = facts.territory if facts else None
        if territory == expected or time.monotonic() > deadline:
            return territory
        await asyncio.sleep(0.05)


async def stored_diversions(db: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
    cur = await db.execute("SELECT city, distributor_id::text, diverted FROM scans ORDER BY scanned_at")
    return await cur.fetchall()


class TestTerritoryChanges:
    async def test_new_regions_judge_shipped_items_at_once_on_the_worker_that_changed_them(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Shipped under three cities, moved to CN-ZJ: a Ningbo scan is in, a Shenzhen scan is out."""
        dealer = await distributor(client, tenant_a, "Three cities", CITIES)
        assert (await ship(client, tenant_a, dealer, issued.batch.id, 0, 10)).status_code == 201
        moved = await client.put(
            f"/v1/distributors/{dealer}/regions", json={"regions": ["CN-ZJ"]}, headers=tenant_a.headers()
        )
        assert moved.status_code == 200, moved.text
        await scan(client, issued.urls[1], location=NINGBO)
        await scan(client, issued.urls[2], location=SHENZHEN)
        assert await stored_diversions(db) == [
            ("CN-330200", dealer, False),
            ("CN-440300", dealer, True),
        ]

    async def test_other_workers_follow_a_territory_change_within_their_polling_delay(
        self,
        client: AsyncTestClient[Any],
        other_worker: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """The other worker, which loaded the old territory, judges by the new one within a second."""
        dealer = await distributor(client, tenant_a, "Three cities", CITIES)
        assert (await ship(client, tenant_a, dealer, issued.batch.id, 0, 10)).status_code == 201
        url = issued.urls[3]
        assert await territory_when_loaded(other_worker, url, tuple(CITIES)) == tuple(CITIES)
        moved = await client.put(
            f"/v1/distributors/{dealer}/regions", json={"regions": ["CN-ZJ"]}, headers=tenant_a.headers()
        )
        assert moved.status_code == 200, moved.text
        started = time.monotonic()
        assert await territory_when_loaded(other_worker, url, ("CN-ZJ",)) == ("CN-ZJ",)
        assert time.monotonic() - started < 2.5  # the follower polls every second
        await scan(other_worker, url, location=NINGBO)
        await scan(other_worker, issued.urls[4], location=SHENZHEN)
        assert await stored_diversions(db) == [
            ("CN-330200", dealer, False),
            ("CN-440300", dealer, True),
        ]


class TestRegistryTerritories:
    async def test_a_region_change_reloads_the_distributor_alone(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """One changed row, not the distributor's shipped ranges: the registry holds one territory each."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=10, activation="on_shipment")
        cur = await db.execute(
            "INSERT INTO distributors (brand_id, name, regions) VALUES (%s, 'D', %s) RETURNING id",
            (tenant_a.brand_id, CITIES),
        )
        row = await cur.fetchone()
        assert row is not None
        dealer: uuid.UUID = row[0]
        cur = await db.execute(
            "INSERT INTO shipments (brand_id, distributor_id, items, shipped_at, shipped_by)"
            " VALUES (%s, %s, 10, now(), 'test') RETURNING id",
            (tenant_a.brand_id, dealer),
        )
        row = await cur.fetchone()
        assert row is not None
        for start in range(10):  # one range per item: ten activation rows
            await db.execute(
                "INSERT INTO activations (brand_id, shipment_id, distributor_id, batch_id, batch_seq,"
                " start_index, stop_index) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (tenant_a.brand_id, row[0], dealer, issued.batch.id, issued.batch.seq, start, start + 1),
            )
        registry = CodeRegistry(settings.all_master_keys)
        await registry.refresh(db)
        facts = registry.verify(issued.urls[7]).facts
        assert facts is not None and facts.territory == tuple(CITIES)
        await db.execute("UPDATE distributors SET name = 'Renamed' WHERE id = %s", (dealer,))
        assert not await registry.changed(db) or await registry.refresh(db) == []  # a rename is no change
        cur = await db.execute(
            "UPDATE distributors SET regions = '{CN-ZJ}' WHERE id = %s RETURNING change_seq", (dealer,)
        )
        row = await cur.fetchone()
        assert row is not None
        assert await registry.changed(db)
        assert await registry.refresh(db) == [row[0]]  # the distributor's row, none of its ten ranges
        for url in issued.urls:
            facts = registry.verify(url).facts
            assert facts is not None and facts.territory == ("CN-ZJ",)
