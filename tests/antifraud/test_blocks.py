"""The blocklist: a brand refuses scans from a device, member or IP range, visibly, reversibly, audited."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.campaigns.test_scan_rewards import launch, points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


async def scan(client: AsyncTestClient[Any], url: str, device_id: str, **extra: Any) -> Any:
    client.cookies.clear()
    headers = extra.pop("headers", {})
    return await client.post(
        "/v1/scans", json={"code": url, "device_id": device_id, **extra}, headers=headers
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Behind a proxy: the client address comes from X-Forwarded-For, so IP blocks can be tested."""
    return msgspec.structs.replace(settings, trust_forwarded_for=True)


async def block(client: AsyncTestClient[Any], tenant: Tenant, **body: Any) -> Any:
    return await client.post(
        "/v1/antifraud/blocks", json={"reason": "bot farm", **body}, headers=tenant.headers(Role.OPERATIONS)
    )


class TestBlocks:
    async def test_a_blocked_device_is_refused_until_the_block_is_lifted(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant, issued: IssuedBatch
    ) -> None:
        made = await block(client, tenant_a, kind="device", value="dev-bot-0001")
        assert made.status_code == 201, made.text
        assert_problem(await scan(client, issued.urls[0], "dev-bot-0001"), 403, "scan-blocked")
        assert (await scan(client, issued.urls[0], "dev-person-01")).status_code == 200
        listed = await client.get("/v1/antifraud/blocks", headers=tenant_a.headers(Role.AUDITOR))
        assert [b["value"] for b in listed.json()["items"]] == ["dev-bot-0001"]
        assert (await client.get("/v1/antifraud/blocks", headers=tenant_b.headers())).json()["items"] == []
        foreign = await client.post(
            f"/v1/antifraud/blocks/{made.json()['id']}/lift", headers=tenant_b.headers()
        )
        assert foreign.status_code == 404
        lifted = await client.post(
            f"/v1/antifraud/blocks/{made.json()['id']}/lift", headers=tenant_a.headers()
        )
        assert lifted.status_code == 200 and lifted.json()["lifted_at"] is not None
        assert (await scan(client, issued.urls[1], "dev-bot-0001")).status_code == 200
        history = await client.get(
            "/v1/antifraud/blocks", params={"active": "false"}, headers=tenant_a.headers()
        )
        assert len(history.json()["items"]) == 1
        audit = await client.get(
            "/v1/audit", params={"object_type": "block"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert {e["action"] for e in audit.json()["items"]} >= {"antifraud.block", "antifraud.unblock"}

    async def test_members_and_ip_ranges_can_be_blocked_and_blocks_expire(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        first = (await scan(client, issued.urls[2], "dev-member-01")).json()
        assert (await block(client, tenant_a, kind="member", value=first["member"]["id"])).status_code == 201
        refused = await scan(client, issued.urls[3], "dev-member-02", member_token=first["member_token"])
        assert_problem(refused, 403, "scan-blocked")
        # Its own device, without its cookie, is still the member.
        assert_problem(await scan(client, issued.urls[3], "dev-member-01"), 403, "scan-blocked")
        # A proxy in front says where scans come from (X-Forwarded-For is trusted only when configured).
        proxied = {"X-Forwarded-For": "203.0.113.77"}
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
        made = await block(client, tenant_a, kind="ip", value="203.0.113.0/24", expires_at=soon)
        assert made.status_code == 201, made.text
        assert_problem(
            await scan(client, issued.urls[4], "dev-anyone-1", headers=proxied), 403, "scan-blocked"
        )
        ok = await scan(client, issued.urls[4], "dev-anyone-1", headers={"X-Forwarded-For": "198.51.100.1"})
        assert ok.status_code == 200
        # An expired block lets scans through again (expiry is checked per scan).
        await db.execute("UPDATE blocks SET expires_at = now() WHERE kind = 'ip'")
        await client.app.state.onecode.registry_follower.refresh_if_stale()
        assert (await scan(client, issued.urls[5], "dev-anyone-2", headers=proxied)).status_code == 200

    async def test_bad_blocks_are_refused(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        assert_problem(await block(client, tenant_a, kind="ip", value="not-an-ip"), 422, "validation-error")
        assert_problem(await block(client, tenant_a, kind="member", value="nobody"), 422, "validation-error")
        # A typo that would refuse every scan of the brand, a member that is none of the brand's, a
        # device id no scan could send:
        for kind, value in (
            ("ip", "0.0.0.0/0"),
            ("ip", "10.0.0.0/7"),
            ("ip", "2001::/16"),
            ("member", str(uuid.uuid4())),
            ("device", "x"),
            ("device", "has a space"),
        ):
            refused = await block(client, tenant_a, kind=kind, value=value)
            assert assert_problem(refused, 422, "validation-error")["errors"][0]["field"] == "value", value
        assert (await block(client, tenant_a, kind="ip", value="10.0.0.0/8")).status_code == 201
        # The same range again (written otherwise): one block per source, so that lifting it lifts it.
        again = await block(client, tenant_a, kind="ip", value="10.1.2.3/8")
        assert "already blocked" in assert_problem(again, 409, "conflict")["detail"]
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
        assert_problem(
            await block(client, tenant_a, kind="device", value=f"dev-{uuid.uuid4().hex}", expires_at=past),
            422,
            "validation-error",
        )
        marketer = await client.post(
            "/v1/antifraud/blocks",
            json={"kind": "device", "value": "dev-12345678", "reason": "nope"},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert marketer.status_code == 403

    async def test_a_blocked_member_is_never_paid_from_a_device_bound_after_the_block(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """A device the member took after its block is not in the workers' copy: the scan goes through,
        the database's reward statement pays it nothing."""
        campaign_id = await launch(client, tenant_a, points_campaign())
        first = (await scan(client, issued.urls[6], "dev-blocked-first")).json()
        assert first["reward"]["points"] == 100
        member_id = first["member"]["id"]
        assert (await block(client, tenant_a, kind="member", value=member_id)).status_code == 201
        await db.execute(
            "INSERT INTO member_devices (brand_id, device_id, member_id)"
            " VALUES (%s, 'dev-blocked-later', %s)",
            (tenant_a.brand_id, member_id),
        )
        later = await scan(client, issued.urls[7], "dev-blocked-later")
        assert later.status_code == 200, later.text
        assert later.json()["member"]["id"] == member_id and later.json()["reward"] is None
        cur = await db.execute("SELECT count(*) FROM points_awards WHERE campaign_id = %s", (campaign_id,))
        assert await cur.fetchone() == (1,)
