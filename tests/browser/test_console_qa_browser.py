"""Console bugs QA found that only a browser shows (scripts, layout), proved in headless Chromium against a
real `onecode serve`: numbers sent as typed, nothing wider than a phone, errors that stay and show once."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from service.models import Role
from tests.browser.test_console_browser import enrolled_over_http, invite, sign_in
from tests.browser.test_consumer_browser import PageProblems, browser, issued, playwright_api, server
from tests.campaigns.test_scan_rewards import draw_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "issued", "server"]  # fixtures, imported to be used here


async def count(db: psycopg.AsyncConnection[Any], query: str) -> Any:
    cur = await db.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


class TestNumbersAsTyped:
    async def test_a_fraction_in_a_whole_number_field_is_refused_not_truncated(
        self, server: str, browser: Any, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """2.7 in a whole-number field says "must be a whole number" and sends nothing (it was sent as 2);
        a third decimal of yuan is refused rather than rounded."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            await invite(api, db, tenant_a, "admin@example.com", "brand_admin")
        context = await browser.new_context(locale="en")
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "admin@example.com")
        await page.wait_for_url("**/console/dashboard")

        await page.goto(server + "/console/products")
        await page.fill("#product-name", "Tea")
        await page.click("#new-product button[type=submit]")
        await expect(page.locator("#products")).to_contain_text("Tea")
        await page.fill("#batch-quantity", "2.7")
        await page.click("#new-batch button[type=submit]")
        whole = "Must be a whole number."
        await expect(page.locator('#new-batch [data-error="quantity"]')).to_have_text(whole)
        assert await count(db, "SELECT count(*) FROM batches") == 0

        await page.goto(server + "/console/campaigns/new")
        await page.fill("#name", "Cap week")
        await page.fill("#budget", "10.005")
        await page.fill("#member_daily_cap", "2.7")
        await expect(page.locator('[data-error="member_daily_cap"]')).to_have_text(whole)
        await expect(page.locator('[data-error="budget_cents"]')).to_contain_text("at most 2 decimals")
        await page.click("#save")
        await expect(page.locator('[data-error="member_daily_cap"]')).to_have_text(whole)
        await page.fill("#member_daily_cap", "2")
        await page.fill("#budget", "10.05")
        await expect(page.locator("#check-state")).to_have_text("✓ Rules check out")
        await page.click("#save")
        await page.wait_for_url("**/console/campaigns/*-*")
        assert await count(db, "SELECT budget_cents FROM campaigns") == 1005
        assert await count(db, "SELECT member_daily_cap FROM campaigns") == 2
        assert problems.seen == []
        await context.close()


# The narrowest phone QA tried: nothing on a page may be wider.
NARROW = {"width": 375, "height": 812}


async def page_width(page: Any) -> int:
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    return width


class TestPhoneWidth:
    async def test_no_page_is_wider_than_a_375px_phone(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
    ) -> None:
        """The prize pool's fieldset grew to its table (743px), a seed hash and a GS1 link ran off the page,
        and a phone number spilled out of its card: all fit 375px now."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            scanned = await enrolled_over_http(api, db, issued.urls[0], "device-narrow-1")
            member_id = scanned["member"]["id"]
            marketer = tenant_a.headers(Role.MARKETER)
            created = await api.post("/v1/campaigns", json=draw_campaign(), headers=marketer)
            campaign_id = created.json()["id"]
            activated = await api.post(f"/v1/campaigns/{campaign_id}:activate", headers=marketer)
            assert activated.status_code == 200, activated.text
            won = (
                await api.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-narrow-2"})
            ).json()
            claimed = await api.post(
                f"/v1/members/me/prizes/{campaign_id}/{won['scan_id']}/claim",
                json={
                    "recipient": "李雷",
                    "phone": "13800138000",
                    "address": "浙江省杭州市西湖区文三路 1 号",
                },
                headers={"Cookie": f"oc_member={won['member_token']}"},
            )
            assert claimed.status_code == 200, claimed.text
            await invite(api, db, tenant_a, "admin@example.com", "brand_admin")
        context = await browser.new_context(locale="en", viewport=NARROW)
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "admin@example.com")
        await page.wait_for_url("**/console/dashboard")

        await page.goto(server + "/console/campaigns/new")
        await page.select_option("#kind", "lucky_draw")
        await expect(page.locator("#prizes tbody tr")).to_have_count(1)
        assert await page_width(page) <= NARROW["width"]
        await page.goto(f"{server}/console/campaigns/{campaign_id}")
        await expect(page.locator("main code")).not_to_be_empty()  # the draw's seed hash
        assert await page_width(page) <= NARROW["width"]
        await page.goto(f"{server}/console/campaigns/{campaign_id}/prizes")
        await expect(page.locator("#claims form")).to_have_count(1)  # a claim waiting, its form in the row
        assert await page_width(page) <= NARROW["width"]
        await page.goto(f"{server}/console/codes/{issued.urls[0].rsplit('/', 1)[1]}")
        assert await page_width(page) <= NARROW["width"]
        await page.goto(f"{server}/console/members/{member_id}")
        await expect(page.locator("#member-phone")).to_have_text("+8613800138000")
        phone = await page.locator("#member-phone").bounding_box()
        card = await page.locator("#member-phone").locator("..").bounding_box()
        assert phone is not None and card is not None
        assert phone["x"] + phone["width"] <= card["x"] + card["width"]
        assert await page.evaluate(
            "(e) => e.scrollWidth <= e.clientWidth", await page.query_selector("#member-phone")
        )
        assert problems.seen == []
        await context.close()


class TestErrorsShowOnceAndStay:
    async def test_a_segment_save_error_stays_through_the_live_count_and_shows_once(
        self, server: str, browser: Any, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Save's 409 was wiped at once by the live count the name field's blur started, and read
        "...exists name: ...exists"; it stays, once."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            saved = await api.post(
                "/v1/segments",
                json={"name": "Dormant", "filter": {"lifecycle": ["dormant"]}},
                headers=tenant_a.headers(Role.MARKETER),
            )
            assert saved.status_code == 201, saved.text
            await invite(api, db, tenant_a, "mkt@example.com", "marketer")
        context = await browser.new_context(locale="en")
        page = await context.new_page()
        problems = PageProblems(page)
        await sign_in(page, server, "mkt@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.goto(server + "/console/segments")
        await expect(page.locator("#live-count")).to_have_text("0")
        await page.fill("#segment-name", "Dormant")
        await page.click("#save-segment")  # the name field's blur starts a count as Save posts
        await expect(page.locator("#builder-error")).not_to_be_empty()
        await page.wait_for_timeout(600)  # past the live count's delay
        await page.check("input[name=lifecycle][value=new]")  # and another count
        await page.wait_for_timeout(600)
        error = await page.locator("#builder-error").text_content() or ""
        assert "Dormant" in error, error
        assert error.count("Dormant") == 1, error
        assert problems.seen == []
        await context.close()

    async def test_the_activation_conflict_shows_once(
        self, server: str, browser: Any, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """A campaign that would tie with a live one for the same scans says so once, not detail and
        field message both."""
        expect = playwright_api.expect
        marketer = tenant_a.headers(Role.MARKETER)
        async with httpx.AsyncClient(base_url=server) as api:
            live = await api.post("/v1/campaigns", json=draw_campaign(name="Live"), headers=marketer)
            assert (
                await api.post(f"/v1/campaigns/{live.json()['id']}:activate", headers=marketer)
            ).is_success
            rival = await api.post("/v1/campaigns", json=draw_campaign(name="Rival"), headers=marketer)
            refused = await api.post(f"/v1/campaigns/{rival.json()['id']}:activate", headers=marketer)
            assert refused.status_code == 409, refused.text
            await invite(api, db, tenant_a, "mkt@example.com", "marketer")
        detail = refused.json()["detail"]
        context = await browser.new_context(locale="en")
        page = await context.new_page()
        await sign_in(page, server, "mkt@example.com")
        await page.wait_for_url("**/console/dashboard")
        await page.goto(f"{server}/console/campaigns/{rival.json()['id']}")
        await page.click("[data-step=activate]")
        await expect(page.locator("#step-error")).to_contain_text(detail)
        shown = await page.locator("#step-error").text_content() or ""
        assert shown.count(detail) == 1, (shown, refused.json())
        await context.close()
