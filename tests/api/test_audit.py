"""The audit log is append-only and hash-chained: edits are refused, and forced edits are detected."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service import audit
from service.models import Role
from tests.conftest import Tenant


class TestAuditChain:
    async def test_admin_writes_are_recorded_with_before_and_after(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Creating and revoking a token leaves two entries naming the actor."""
        created = (
            await client.post("/v1/tokens", json={"role": "finance", "name": "f"}, headers=tenant_a.headers())
        ).json()
        await client.post(f"/v1/tokens/{created['token']['id']}/revoke", headers=tenant_a.headers())
        entries = (await client.get("/v1/audit?object_type=api_token", headers=tenant_a.headers())).json()[
            "items"
        ]
        revoke = next(e for e in entries if e["action"] == "token.revoke")
        assert revoke["actor"].startswith("token:")
        assert revoke["before"]["revoked_at"] is None
        assert revoke["after"]["revoked_at"] is not None

    async def test_updates_and_deletes_are_refused(
        self, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """A trigger makes the table append-only, even for the application's own role."""
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.execute("UPDATE audit_log SET actor = 'someone else'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.execute("TRUNCATE audit_log")

    async def test_chain_verifies_and_a_forced_edit_is_detected(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """With triggers bypassed by a superuser, rewriting one entry breaks the chain from that entry."""
        for n in range(3):
            await client.post(
                "/v1/tokens", json={"role": "marketer", "name": f"m{n}"}, headers=tenant_a.headers()
            )
        verdict = (await client.get("/v1/audit/verify", headers=tenant_a.headers(Role.AUDITOR))).json()
        assert verdict["intact"] is True and verdict["checked"] >= 3
        victim = await (await db.execute("SELECT id FROM audit_log ORDER BY id OFFSET 2 LIMIT 1")).fetchone()
        assert victim is not None
        await db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        await db.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = %s", (victim[0],))
        await db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
        result = await audit.verify_chain(db)
        assert result.intact is False
        assert result.first_bad_id == victim[0]

    async def test_concurrent_appends_keep_one_chain(
        self, db: psycopg.AsyncConnection[Any], settings: Any
    ) -> None:
        """Appends from many transactions at once still link each entry to exactly one predecessor."""
        import asyncio

        async def append(n: int) -> None:
            async with (
                await psycopg.AsyncConnection.connect(settings.database_url) as conn,
                conn.transaction(),
            ):
                await audit.record(
                    conn, actor="t", brand_id=None, action="test.append", object_type="t", object_id=n
                )

        await asyncio.gather(*(append(n) for n in range(20)))
        result = await audit.verify_chain(db)
        assert result.intact and result.checked >= 20
