"""Faults: PostgreSQL going away mid-run gives fast 503s with Retry-After, and the service heals itself."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient
from psycopg import sql

from service import maintenance
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Engines, Tenant
from tests.fixtures_codes import issue_batch


def _dbname(settings: Settings) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(settings.database_url or "")["dbname"])


def set_database_reachable(engines: Engines, dbname: str, *, reachable: bool) -> None:
    """Refuse (or allow) new connections and drop the current ones: the database is 'down' for the app."""
    with engines.admin() as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(dbname), sql.SQL("true" if reachable else "false")
            )
        )
        if not reachable:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )


class TestPostgresOutage:
    async def test_scans_fail_fast_with_503_and_recover(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        engines: Engines,
    ) -> None:
        """Acknowledged scans are durable; during the outage none is acknowledged; then all is well."""
        issued = await issue_batch(db, settings, tenant_a.brand_id)
        ok = await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-fault-1"})
        assert ok.json()["verdict"] == "genuine_first"
        await db.close()
        dbname = _dbname(settings)
        set_database_reachable(engines, dbname, reachable=False)
        try:
            started = time.monotonic()
            down = await client.post(
                "/v1/scans", json={"code": issued.urls[1], "device_id": "device-fault-2"}
            )
            elapsed = time.monotonic() - started
            problem = assert_problem(down, 503, "unavailable")
            assert int(down.headers["retry-after"]) >= 1
            assert "detail" in problem
            assert elapsed < 5  # a client waiting on a dead database is a client that retries too late
        finally:
            set_database_reachable(engines, dbname, reachable=True)
        healed = await client.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-fault-2"})
        assert healed.status_code == 200, healed.text
        assert healed.json()["verdict"] == "genuine_first"  # the refused scan left no trace
        again = await client.post(
            "/v1/scans", json={"code": issued.urls[0], "device_id": f"d-{uuid.uuid4().hex}"}
        )
        assert again.status_code == 200, again.text
        assert again.json()["verdict"] == "genuine_repeat", again.text


class TestHousekeeping:
    async def test_partitions_are_created_ahead(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], app: Any
    ) -> None:
        """The scan log has this month's partition and the next two, for both scan tables."""
        await maintenance.run_once(app.state.onecode.pool)
        cur = await db.execute(
            "SELECT count(*) FROM pg_inherits"
            " WHERE inhparent IN ('scans'::regclass, 'counterfeit_scans'::regclass)"
        )
        row = await cur.fetchone()
        assert row is not None and row[0] >= 6

    async def test_the_development_sms_outbox_keeps_a_month(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], app: Any
    ) -> None:
        """Codes and texts the development adapter recorded go after SMS_OUTBOX_DAYS; newer ones stay."""
        brand = uuid.uuid4()
        await db.execute(
            "INSERT INTO sms_outbox (brand_id, phone_index, body, created_at)"
            " VALUES (%s, '\\x01', 'old', now() - make_interval(days => %s)), (%s, '\\x01', 'new', now())",
            (brand, maintenance.SMS_OUTBOX_DAYS + 1, brand),
        )
        await maintenance.run_once(app.state.onecode.pool)
        cur = await db.execute("SELECT body FROM sms_outbox WHERE brand_id = %s", (brand,))
        assert await cur.fetchall() == [("new",)]
