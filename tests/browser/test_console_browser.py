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
from tests.scans.test_consumer_page import path_of
from tests.scans.test_members_api import latest_otp

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "issued", "server"]  # fixtures, imported to be used here

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


async def enrolled_over_http(
    api: httpx.AsyncClient, db: psycopg.AsyncConnection[Any], url: str, device_id: str
) -> dict[str, Any]:
    """Scan a code, then enrol the phone 13800138000 with the development SMS code; the scan's answer."""
    scanned = await api.post("/v1/scans", json={"code": url, "device_id": device_id})
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
    answer: dict[str, Any] = scanned.json()
    return answer


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


async def fill_lucky_draw(page: Any) -> None:
    """The editor as a marketer fills it: a draw whose every scan wins a 20-yuan prize."""
    expect = playwright_api.expect
    await page.fill("#name", "瓶盖抽奖")
    await page.select_option("#kind", "lucky_draw")
    await page.fill("#prizes tbody [data-prize=name]", "保温杯")
    await page.fill("#prizes tbody [data-prize=cost]", "20")
    await page.fill("#no_prize_weight", "30")
    await expect(page.locator("#prizes tbody [data-chance]")).to_have_text("25.00%")
    await expect(page.locator("#no-prize-chance")).to_have_text("75.00%")
    await expect(page.locator("#preview")).to_contain_text("5.00 元")
    await page.fill("#no_prize_weight", "0")  # every scan wins, for the test to know the outcome
    await page.click("#save")  # no budget yet: the page says so before asking the API
    await expect(page.locator('[data-error="budget_cents"]')).to_have_text("必填。")
    await page.fill("#budget", "100")
    await page.fill("#daily_budget", "200")  # the API's rule, checked as it is typed, shown by its field
    await expect(page.locator('[data-error="daily_budget_cents"]')).to_contain_text("exceeds")
    await page.fill("#daily_budget", "")
    await expect(page.locator("#check-state")).to_have_text("✓ 规则校验通过")
    await expect(page.locator('[data-error="daily_budget_cents"]')).to_have_text("")


async def receive_in_the_portal(browser: Any, server: str, tmp_path: Path) -> None:
    """The distributor confirms receipt on a phone, and finds every brand page closed to it."""
    expect = playwright_api.expect
    phone = await browser.new_context(locale="zh-CN", viewport=PHONE)
    portal = await phone.new_page()
    problems = PageProblems(portal)
    await sign_in(portal, server, "dist@example.com")
    await portal.wait_for_url("**/console/portal")
    await portal.click("#shipments [data-call]")
    await expect(portal.locator("#shipments [data-call]")).to_have_count(0)
    await expect(portal.locator("#shipments")).not_to_contain_text("在途")
    await portal.screenshot(path=str(tmp_path / "console-portal-phone.png"), full_page=True)
    for brand_page in ("/console/products", "/console/shipments", "/console/campaigns"):
        response = await portal.goto(server + brand_page)
        assert response is not None and response.status == 403, brand_page
    assert problems.seen == []
    await phone.close()


async def edit_the_draft(page: Any) -> None:
    """A saved draft opens in the editor with its values; a changed stock is saved (the pool replaced)."""
    expect = playwright_api.expect
    await page.click("#edit")
    await page.wait_for_url("**/edit")
    await expect(page.locator("#name")).to_have_value("瓶盖抽奖")
    await expect(page.locator("#kind")).to_be_disabled()
    await expect(page.locator("#prizes tbody [data-prize=name]")).to_have_value("保温杯")
    await page.fill("#prizes tbody [data-prize=stock]", "80")
    await expect(page.locator("#check-state")).to_have_text("✓ 规则校验通过")
    await page.click("#save")
    await page.wait_for_url(lambda url: not url.endswith("/edit"))
    await expect(page.locator("#prize-figures")).to_contain_text("0 / 80")


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
        await expect(page.locator("h1")).to_have_text("Your role may not open this page")
        await context.close()

        # A bookmarked page without a session: sign in, and land back on it.
        context = await browser.new_context(locale="zh-CN")
        page = await context.new_page()
        problems = PageProblems(page)
        await page.goto(server + "/console/campaigns?status=active")
        await page.wait_for_url("**/console/sign-in?next=*")
        await page.fill("#email", "mkt@example.com")
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console/campaigns?status=active")
        assert problems.seen == []
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
            await enrolled_over_http(api, db, issued.urls[0], "device-console-cs")
            await invite(api, db, tenant_a, "cs@example.com", "customer_service")
        context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "cs@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.click("nav >> text=会员查询")
        await page.wait_for_url("**/console/members")
        await page.fill("#phone", "138 0013 8000")
        await page.click("form#search button")
        await page.click("#results a")
        await expect(page.locator("#member-phone")).to_have_text("+8613800138000")
        await expect(page.locator("#timeline")).to_contain_text("扫码")
        await page.screenshot(path=str(tmp_path / "console-member-desktop.png"), full_page=True)
        assert problems.seen == []
        await context.close()

    async def test_marketer_builds_a_lucky_draw_activates_it_and_sees_the_scan_win(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        """The editor checks as the marketer types, previews chances, saves; the page activates it; a
        consumer's scan through the consumer page wins; the dashboard and the campaign page show it."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            await invite(api, db, tenant_a, "mkt@example.com", "marketer")
        context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "mkt@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.click("nav >> text=营销活动")
        await page.click("#new-campaign")
        await page.wait_for_url("**/console/campaigns/new")
        await fill_lucky_draw(page)
        await page.screenshot(path=str(tmp_path / "console-campaign-editor-desktop.png"), full_page=True)
        await page.click("#save")
        await page.wait_for_url("**/console/campaigns/*-*")
        await expect(page.locator("#status")).to_have_text("草稿")
        await edit_the_draft(page)
        await page.click("#step-activate")
        await expect(page.locator("#status")).to_have_text("进行中")

        phone = await browser.new_context(locale="zh-CN", viewport=PHONE)
        consumer = await phone.new_page()
        await consumer.goto(server + path_of(issued.urls[1]))
        await expect(consumer.locator("#verdict-title")).to_have_text("正品 · 首次扫码")
        await expect(consumer.locator("#verdict-reward")).to_contain_text("保温杯")
        await consumer.screenshot(path=str(tmp_path / "consumer-won-phone.png"), full_page=True)
        await phone.close()

        await page.reload()
        await expect(page.locator("#rewarded-scans")).to_have_text("1")
        await expect(page.locator("#prize-figures")).to_contain_text("1 / 80")
        await page.screenshot(path=str(tmp_path / "console-campaign-desktop.png"), full_page=True)
        await page.click("nav >> text=概览")
        await expect(page.locator("#scans-today")).to_have_text("1")
        await expect(page.locator("main")).to_contain_text("瓶盖抽奖")
        await page.set_viewport_size(PHONE)
        await page.goto(server + "/console/campaigns")
        await page.screenshot(path=str(tmp_path / "console-campaigns-phone.png"), full_page=True)
        assert problems.seen == []
        await context.close()

    async def test_customer_service_sees_segments_but_cannot_export_them(
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
            await api.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-segment-1"})
            saved = await api.post(
                "/v1/segments",
                json={"name": "新会员", "filter": {"lifecycle": ["new"]}},
                headers=tenant_a.headers(Role.MARKETER),
            )
            assert saved.status_code == 201, saved.text
            await invite(api, db, tenant_a, "cs@example.com", "customer_service")
        context = await browser.new_context(locale="zh-CN", viewport=PHONE)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "cs@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.goto(server + "/console/segments")
        await expect(page.locator("#segments")).to_contain_text("新会员")
        await expect(page.locator("[data-export]")).to_have_count(0)
        await expect(page.locator("#save-segment")).to_have_count(0)
        await page.check("input[name=lifecycle][value=new]")
        await expect(page.locator("#live-count")).to_have_text("1")
        await page.screenshot(path=str(tmp_path / "console-segments-phone.png"), full_page=True)
        response = await page.goto(f"{server}/v1/segments/{saved.json()['id']}/members.csv")
        assert response is not None and response.status == 403
        assert problems.seen == []
        await context.close()

    async def test_operations_issues_exports_and_ships_the_distributor_receives(
        self,
        server: str,
        browser: Any,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            east = await api.post(
                "/v1/distributors",
                json={"name": "华东经销商", "regions": ["CN-ZJ"]},
                headers=tenant_a.headers(),
            )
            await invite(api, db, tenant_a, "ops@example.com", "operations")
            await invite(
                api, db, tenant_a, "dist@example.com", "distributor", distributor_id=east.json()["id"]
            )
        context = await browser.new_context(locale="zh-CN", viewport=DESKTOP, accept_downloads=True)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "ops@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.click("nav >> text=产品与批次")
        await page.click("#new-product button[type=submit]")  # no name: the API's error, under the field
        await expect(page.locator('#new-product [data-error="name"]')).not_to_be_empty()
        await page.fill("#product-name", "龙井茶 250g")
        await page.fill("#product-gtin", "09506000134352")
        await page.click("#new-product button[type=submit]")
        await expect(page.locator("#products")).to_contain_text("龙井茶 250g")
        await page.fill("#batch-quantity", "1200")
        await page.fill("#batch-lot", "L2026-12")
        await page.click("#new-batch button[type=submit]")
        await expect(page.locator("#batches")).to_contain_text("L2026-12")
        async with page.expect_download() as downloading:
            await page.click("#batches [data-export-csv]")
        download = await downloading.value
        saved = tmp_path / "codes.csv"
        await download.save_as(saved)
        assert len(saved.read_text().splitlines()) == 1 + 1200
        await expect(page.locator("#batches progress")).to_have_attribute("value", "1")
        await page.screenshot(path=str(tmp_path / "console-products-desktop.png"), full_page=True)

        await page.click("nav >> text=发货与激活")
        await expect(page.locator("#ship-stop")).to_have_value("1200")
        await page.fill("#ship-stop", "600")
        await page.fill("#ship-reference", "DN-2026-001")
        await page.click("#ship button[type=submit]")
        await expect(page.locator("#shipments")).to_contain_text("DN-2026-001")
        await page.goto(server + "/console/products")
        await expect(page.locator("#batches")).to_contain_text("600")
        await page.screenshot(path=str(tmp_path / "console-shipments-desktop.png"), full_page=True)
        assert problems.seen == []
        await context.close()

        await receive_in_the_portal(browser, server, tmp_path)

    async def test_every_page_at_phone_and_desktop_widths(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        """Each page a brand admin's header links to, and the distributor's: rendered at both widths
        without script or policy errors, under 300 KB, screenshots kept as artifacts."""
        async with httpx.AsyncClient(base_url=server) as api:
            scanned = await api.post(
                "/v1/scans", json={"code": issued.urls[0], "device_id": "device-pages-1"}
            )
            member_id = scanned.json()["member"]["id"]
            distributor = await api.post(
                "/v1/distributors", json={"name": "East", "regions": ["CN-ZJ"]}, headers=tenant_a.headers()
            )
            await invite(api, db, tenant_a, "admin@example.com", "brand_admin")
            await invite(
                api, db, tenant_a, "dist@example.com", "distributor", distributor_id=distributor.json()["id"]
            )
        serial = issued.urls[0].rsplit("/", 1)[1]
        pages = [
            "dashboard", "campaigns", "campaigns/new", "products", "shipments", "members",
            f"members/{member_id}", "segments", "kpis", "approvals", "antifraud", f"codes/{serial}", "audit",
            "settings", "account",
        ]  # fmt: skip
        for who, paths in (("admin@example.com", pages), ("dist@example.com", ["portal", "account"])):
            for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
                context = await browser.new_context(locale="zh-CN", viewport=viewport)
                page = await context.new_page()
                problems = PageProblems(page)
                await sign_in(page, server, who)
                await page.wait_for_url(lambda url: "/sign-in" not in url)
                for path in paths:
                    response = await page.goto(f"{server}/console/{path}")
                    assert response is not None and response.status == 200, path
                    assert len(await response.body()) < 300_000, path
                    name = path.replace("/", "-")[:24]
                    await page.screenshot(path=str(tmp_path / f"console-{name}-{width}.png"), full_page=True)
                assert problems.seen == [], (who, width)
                await context.close()
