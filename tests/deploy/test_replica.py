"""DATABASE_REPLICA_URL: the read-only reports read from the replica; everything else from the primary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from tests.conftest import cloned_database
from tests.fixtures_codes import issue_batch

if TYPE_CHECKING:
    from collections.abc import Iterator

    from service.settings import Settings
    from tests.conftest import Engines, Tenant


@pytest.fixture
def replica_url(engines: Engines) -> Iterator[str]:
    """A second, empty (migrated) database standing in for a replica that has not caught up yet."""
    with cloned_database(engines, f"oc_replica_{engines.run_id}") as url:
        yield url


async def test_reports_read_the_replica_and_scans_write_the_primary(
    settings: Settings, replica_url: str, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
) -> None:
    issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=5)
    with_replica = msgspec.structs.replace(settings, database_replica_url=replica_url)
    async with AsyncTestClient(app=create_app(with_replica)) as client:
        scanned = await client.post(
            "/v1/scans", json={"code": issued.urls[0], "device_id": "replica-device-1"}
        )
        assert scanned.json()["verdict"] == "genuine_first"
        # The replica has not seen the batch: its report is empty, though the primary holds it.
        report = await client.get("/v1/reports/batches", headers=tenant_a.headers())
        assert report.status_code == 200, report.text
        assert report.json()["items"] == []
    async with AsyncTestClient(app=create_app(settings)) as client:
        report = await client.get("/v1/reports/batches", headers=tenant_a.headers())
        assert [item["batch_id"] for item in report.json()["items"]] == [str(issued.batch.id)]
