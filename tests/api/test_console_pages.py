"""Console pages over HTTP: sign-in page, the dashboard by role, language, escaping."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from service.models import Role
from service.settings import Settings
from tests.api.test_console_auth import PASSWORD, last_mail, sign_in
from tests.campaigns.test_scan_rewards import launch, points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch
from tests.members.test_member_admin import enrolled_member


async def user(
    client: AsyncTestClient[Any],
    db: psycopg.AsyncConnection[Any],
    tenant: Tenant,
    email: str,
    role: str,
    **extra: Any,
) -> None:
    invited = await client.post(
        "/v1/users/invitations",
        json={"email": email, "role": role, **extra},
        headers=tenant.headers(Role.BRAND_ADMIN),
    )
    assert invited.status_code == 201, invited.text
    token = await last_mail(db, email)
    assert (
        await client.post("/console/invitations/accept", json={"token": token, "password": PASSWORD})
    ).status_code == 201


class TestConsolePages:
    async def test_sign_in_page_and_dashboard_by_role(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        page = await client.get("/console/sign-in")
        assert page.status_code == 200 and "登录" in page.text
        assert "Sign in" in (await client.get("/console/sign-in", headers={"Accept-Language": "en"})).text
        assert len(page.content) < 300_000 and "http://" not in page.text and "https://" not in page.text
        assert (await client.get("/console", follow_redirects=False)).headers[
            "location"
        ] == "/console/sign-in"
        assert (await client.get("/console/dashboard")).status_code == 401

        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-console-1"})
        await launch(client, tenant_a, points_campaign(name="<script>alert(1)</script> week"))
        client.cookies.clear()
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        dashboard = await client.get("/console/dashboard")
        assert dashboard.status_code == 200, dashboard.text
        assert 'id="scans-today">1<' in dashboard.text and "mkt@example.com" in dashboard.text
        assert "<svg" in dashboard.text and len(dashboard.content) < 300_000
        assert "&lt;script&gt;alert(1)&lt;/script&gt; week" in dashboard.text  # brand text is escaped

        distributor = await client.post(
            "/v1/distributors",
            json={"name": "East", "regions": ["CN-ZJ"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        client.cookies.clear()
        await user(
            client, db, tenant_a, "dist@example.com", "distributor", distributor_id=distributor.json()["id"]
        )
        assert (await sign_in(client, "dist@example.com")).status_code == 200
        assert (await client.get("/console/dashboard")).status_code == 403
        portal = await client.get("/console/portal")
        assert portal.status_code == 200, portal.text
        assert 'id="diversions">0<' in portal.text and "/v1/reports/diversion?format=csv" in portal.text
        assert (await client.get("/v1/reports/diversion?format=csv")).status_code == 200  # the export link
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        assert (await client.get("/console/portal")).status_code == 403

    async def test_member_pages_show_what_the_role_may_see(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        member_id = await enrolled_member(client, db, issued.urls[0], "device-console-m")
        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        search = await client.get("/console/members")
        assert search.status_code == 200 and "/v1/members:search" in search.text
        page = await client.get(f"/console/members/{member_id}")
        assert page.status_code == 200, page.text
        assert (
            "+8613800138000" in page.text and "扫码" in page.text
        )  # full phone, and the scan in the timeline
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        masked = await client.get(f"/console/members/{member_id}", headers={"Accept-Language": "en"})
        assert "+86138****8000" in masked.text and "13800138000" not in masked.text
        assert (await client.get(f"/console/members/{uuid.uuid4()}")).status_code == 404
