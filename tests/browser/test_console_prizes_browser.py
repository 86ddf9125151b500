"""The console's prize shipping page in headless Chromium against a real `onecode serve`: operations open it
from the draw's page, download the claims to ship, and mark prizes shipped row by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from service.models import Role
from tests.browser.test_console_browser import DESKTOP, invite, sign_in
from tests.browser.test_console_qa_browser import NARROW, page_width
from tests.browser.test_consumer_browser import PageProblems, browser, issued, playwright_api, server
from tests.campaigns.test_fulfilment import ADDRESS, SHIPMENT
from tests.campaigns.test_scan_rewards import draw_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "issued", "server"]  # fixtures, imported to be used here


async def claimed_draw(api: httpx.AsyncClient, tenant: Tenant, urls: list[str]) -> tuple[str, list[str]]:
    """A live draw of a physical prize that every scan wins, one winner per code, each with an address
    given: the campaign's id and the wins' scan ids, oldest first."""
    marketer = tenant.headers(Role.MARKETER)
    created = await api.post("/v1/campaigns", json=draw_campaign(), headers=marketer)
    campaign_id: str = created.json()["id"]
    activated = await api.post(f"/v1/campaigns/{campaign_id}:activate", headers=marketer)
    assert activated.status_code == 200, activated.text
    scan_ids = []
    for i, url in enumerate(urls):
        api.cookies.clear()
        scanned = await api.post("/v1/scans", json={"code": url, "device_id": f"device-prize-{i}"})
        answer = scanned.json()
        assert answer["reward"]["outcomes"][0]["result"] == "won", answer
        claimed = await api.post(
            f"/v1/members/me/prizes/{campaign_id}/{answer['scan_id']}/claim",
            json={**ADDRESS, "recipient": f"{ADDRESS['recipient']}{i}", "postal_code": "310012"},
            headers={"Cookie": f"oc_member={answer['member_token']}"},
        )
        assert claimed.status_code == 200, claimed.text
        scan_ids.append(answer["scan_id"])
    api.cookies.clear()
    return campaign_id, scan_ids


async def download_claims_to_ship(page: Any, tmp_path: Path, rows: int) -> None:
    """The page's CSV link: the claims waiting with their addresses, after a header."""
    async with page.expect_download() as downloading:
        await page.click("#claims-csv")
    saved = tmp_path / "prize-claims.csv"
    await (await downloading.value).save_as(saved)
    text = saved.read_text(encoding="utf-8-sig")
    assert len(text.splitlines()) == 1 + rows
    assert ADDRESS["address"] in text


async def ship_in_row(row: Any, carrier: str, tracking_number: str) -> None:
    """Send the row's form blank (each field says it is required), with a tracking number no courier
    prints (the API's reason, under the field), then right."""
    expect = playwright_api.expect
    form = row.locator("form")
    await form.locator("button").click()
    await expect(form.locator('[data-error="carrier"]')).to_have_text("必填。")
    await expect(form.locator('[data-error="tracking_number"]')).to_have_text("必填。")
    await form.locator("[name=carrier]").fill(carrier)
    await form.locator("[name=tracking_number]").fill("SF#1")
    await form.locator("button").click()
    await expect(form.locator('[data-error="tracking_number"]')).not_to_have_text("必填。")
    await expect(form.locator('[data-error="tracking_number"]')).not_to_be_empty()
    await expect(form.locator('[data-error="carrier"]')).to_be_empty()
    await form.locator("[name=tracking_number]").fill(tracking_number)
    await form.locator("button").click()


class TestShippingPrizesInChromium:
    async def test_operations_marks_prizes_shipped_from_the_page(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        """From the draw's page to its prizes: the CSV of claims to ship downloads with the addresses; a
        blank form says which fields, a filled one shows the shipment in its row (and offers the courier to
        the rows still waiting); a prize another operator shipped meanwhile says so, once. After a reload
        the shipped prize is under "shipped". The page fits a 375px phone."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            campaign_id, scan_ids = await claimed_draw(api, tenant_a, issued.urls[:3])
            await invite(api, db, tenant_a, "ops@example.com", "operations")
        context = await browser.new_context(locale="zh-CN", viewport=DESKTOP, accept_downloads=True)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "ops@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.goto(f"{server}/console/campaigns/{campaign_id}")
        await page.click("#prize-claims")
        await page.wait_for_url("**/prizes")
        claims = page.locator("#claims tbody tr")
        await expect(claims).to_have_count(3)
        await expect(claims.nth(0)).to_contain_text("李雷0")
        await expect(claims.nth(0)).to_contain_text(ADDRESS["address"])
        await download_claims_to_ship(page, tmp_path, rows=3)

        await ship_in_row(claims.nth(0), **SHIPMENT)
        await expect(claims.nth(0)).to_contain_text(
            f"已发货 · {SHIPMENT['carrier']} {SHIPMENT['tracking_number']}"
        )
        await expect(claims.nth(0).locator("form")).to_have_count(0)
        await expect(claims.nth(1).locator("[name=carrier]")).to_have_value(SHIPMENT["carrier"])
        cur = await db.execute(
            "SELECT carrier, tracking_number FROM prize_claims WHERE scan_id = %s", (scan_ids[0],)
        )
        assert await cur.fetchone() == (SHIPMENT["carrier"], SHIPMENT["tracking_number"])

        async with httpx.AsyncClient(base_url=server) as api:  # another operator ships the second meanwhile
            elsewhere = await api.post(
                f"/v1/campaigns/{campaign_id}/prize-claims/{scan_ids[1]}/ship",
                json={"carrier": "EMS", "tracking_number": "EE123456789CN"},
                headers=tenant_a.headers(Role.OPERATIONS),
            )
            assert elsewhere.status_code == 200, elsewhere.text
        second = claims.nth(1).locator("form")
        await second.locator("[name=tracking_number]").fill("SF0000000000001")
        await second.locator("button").click()
        error = second.locator("[data-error-general]")
        await expect(error).to_contain_text("EE123456789CN")
        assert (await error.text_content() or "").count("EE123456789CN") == 1
        await page.screenshot(path=str(tmp_path / "console-prizes-desktop.png"), full_page=True)

        await page.reload()
        await expect(claims).to_have_count(1)
        await expect(claims.nth(0)).to_contain_text("李雷2")
        await page.click("#status-switch >> text=已发货")
        await expect(claims).to_have_count(2)
        await expect(claims.nth(0)).to_contain_text(SHIPMENT["tracking_number"])
        await expect(claims.nth(1)).to_contain_text("EE123456789CN")
        await page.set_viewport_size(NARROW)
        await page.click("#status-switch >> text=待发货")
        await expect(claims).to_have_count(1)
        assert await page_width(page) <= NARROW["width"]
        await page.screenshot(path=str(tmp_path / "console-prizes-phone.png"), full_page=True)
        assert problems.seen == []
        await context.close()
