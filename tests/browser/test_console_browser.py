"""The console in headless Chromium against a real `onecode serve`: sign in, dashboard, role walls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from service.models import Role
from tests.api.test_console_auth import PASSWORD, last_mail
from tests.browser.test_consumer_browser import PageProblems, browser, issued, playwright_api, server
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch
from tests.scans.test_members_api import latest_otp

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "issued", "server"]  # fixtures, imported to be used here

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


async def invite(
    api: httpx.AsyncClient,
    db: psycopg.AsyncConnection[Any],
    tenant: Tenant,
    email: str,
    role: str,
    **extra: Any,
) -> None:
    invited = await api.post(
        "/v1/users/invitations",
        json={"email": email, "role": role, **extra},
        headers=tenant.headers(Role.BRAND_ADMIN),
    )
    assert invited.status_code == 201, invited.text
    accepted = await api.post(
        "/console/invitations/accept", json={"token": await last_mail(db, email), "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text


async def sign_in(page: Any, server: str, email: str) -> None:
    await page.goto(server + "/console/sign-in")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")


class TestConsoleInChromium:
    async def test_marketer_signs_in_and_sees_the_scan_a_distributor_is_walled_off(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            scanned = await api.post(
                "/v1/scans", json={"code": issued.urls[0], "device_id": "device-console-b"}
            )
            assert scanned.status_code == 200, scanned.text
            await invite(api, db, tenant_a, "mkt@example.com", "marketer")
            distributor = await api.post(
                "/v1/distributors", json={"name": "East", "regions": ["CN-ZJ"]}, headers=tenant_a.headers()
            )
            await invite(
                api, db, tenant_a, "dist@example.com", "distributor", distributor_id=distributor.json()["id"]
            )
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = await browser.new_context(locale="zh-CN", viewport=viewport)
            page = await context.new_page()
            problems = PageProblems(page)
            await sign_in(page, server, "wrong@example.com")
            await expect(page.locator("#error")).to_have_text("邮箱或密码错误。")
            await sign_in(page, server, "mkt@example.com")
            await page.wait_for_url("**/console/dashboard")
            await expect(page.locator("h1")).to_have_text("概览")
            await expect(page.locator("#scans-today")).to_have_text("1")
            await page.screenshot(path=str(tmp_path / f"console-dashboard-{name}.png"), full_page=True)
            assert problems.seen == []
            await context.close()

        context = await browser.new_context(locale="en")
        page = await context.new_page()
        await sign_in(page, server, "dist@example.com")
        await page.wait_for_url("**/console/portal")
        await expect(page.locator("h1")).to_have_text("Distributor portal")
        await page.screenshot(path=str(tmp_path / "console-portal-desktop.png"), full_page=True)
        response = await page.goto(server + "/console/dashboard")
        assert response is not None and response.status == 403
        await context.close()

    async def test_customer_service_finds_a_member_by_phone(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            scanned = await api.post(
                "/v1/scans", json={"code": issued.urls[0], "device_id": "device-console-cs"}
            )
            token = scanned.json()["member_token"]
            await api.post("/v1/members/otp", json={"phone": "13800138000", "member_token": token})
            enrolled = await api.post(
                "/v1/members/enroll",
                json={
                    "phone": "13800138000",
                    "otp": await latest_otp(db),
                    "consent_marketing": True,
                    "consent_location": False,
                    "member_token": token,
                },
            )
            assert enrolled.status_code == 200, enrolled.text
            await invite(api, db, tenant_a, "cs@example.com", "customer_service")
        context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "cs@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.click("text=会员")
        await page.wait_for_url("**/console/members")
        await page.fill("#phone", "138 0013 8000")
        await page.click("form#search button")
        await page.click("#results a")
        await expect(page.locator("#member-phone")).to_have_text("+8613800138000")
        await expect(page.locator("#timeline")).to_contain_text("扫码")
        await page.screenshot(path=str(tmp_path / "console-member-desktop.png"), full_page=True)
        assert problems.seen == []
        await context.close()
