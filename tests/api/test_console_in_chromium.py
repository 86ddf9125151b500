"""Console bugs QA found that only a browser shows (scripts, layout), proved in headless Chromium against a
real `onecode serve`: numbers sent as typed, nothing wider than a phone, errors that stay and show once."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.browser.test_console_browser import invite, sign_in
from tests.browser.test_consumer_browser import PageProblems, browser, issued, playwright_api, server
from tests.conftest import Tenant

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
