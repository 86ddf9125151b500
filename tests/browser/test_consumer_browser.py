"""The consumer page in headless Chromium against a real `onecode serve`: scan, verdict, enrolment."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from service.settings import Settings
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.scans.test_consumer_page import path_of
from tests.scans.test_members_api import latest_otp
from tests.test_cli import free_port, wait_ready

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Debian's chromium package; Playwright drives it instead of downloading a browser of its own.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
# Low enough that one test can reach it with a few page loads.
DEVICE_SCANS_PER_MINUTE = 5

try:
    from playwright import async_api as playwright_api
except ImportError:  # a broken install counts as missing too
    pytest.skip("playwright is not installed: pip install -e '.[dev]'", allow_module_level=True)


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`onecode serve` as a subprocess on this test's database, Redis prefix and master key."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "ONECODE_REDIS_PREFIX": settings.redis_prefix,
        "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(settings.master_key).decode(),
        "ONECODE_HOME": str(tmp_path / "server-home"),
        "ONECODE_LOG_JSON": "false",
        "ONECODE_SCAN_DOMAIN": f"127.0.0.1:{port}",
        "ONECODE_SCANS_PER_DEVICE_MINUTE": str(DEVICE_SCANS_PER_MINUTE),
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--no-migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if process.poll() is not None:
            pytest.fail(f"onecode serve exited at once:\n{log_path.read_text()}")
        wait_ready(f"http://127.0.0.1:{port}/readyz", deadline_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id)


class PageProblems:
    """Script errors and CSP violations seen by the browser: the page must produce none."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"script error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A missing favicon is logged as a console error too; only policy violations matter here.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.seen.append(message.text)


async def count(db: psycopg.AsyncConnection[Any], query: str) -> Any:
    cur = await db.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


class TestConsumerPageInChromium:
    async def test_first_scan_then_enrolment(
        self, server: str, browser: Any, issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Open a genuine code: first-scan verdict; enrol with the SMS code; a reload shows the member."""
        expect = playwright_api.expect
        context = await browser.new_context(locale="zh-CN")
        page = await context.new_page()
        problems = PageProblems(page)
        await page.goto(server + path_of(issued.urls[0]))
        await expect(page.locator("h1")).to_have_text("Demo Lager 500ml")
        await expect(page.locator("#verdict-title")).to_have_text("正品 · 首次扫码")
        await expect(page.locator("#member")).to_be_visible()

        await page.fill("#phone", "138 0013 8000")
        await page.click("#send-code")
        await expect(page.locator("#enrol-form")).to_be_visible()
        await page.fill("#otp", await latest_otp(db))
        await page.check("#consent-marketing")
        await page.click("summary")
        await page.fill("#profile-name", "小王")
        await page.click("#enrol")
        await expect(page.locator("#enrolled")).to_be_visible()
        await expect(page.locator("#enrolled-detail")).to_contain_text("8000")
        await expect(page.locator("#member")).to_be_hidden()

        # The same phone scans again: a repeat with the count, and the httpOnly cookie says "member".
        await page.reload()
        await expect(page.locator("#verdict-title")).to_have_text("正品 · 此码已被扫描过")
        await expect(page.locator("#verdict-detail")).to_contain_text("2 次")
        await expect(page.locator("#enrolled")).to_be_visible()
        assert problems.seen == []
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["oc_member"]["httpOnly"] is True
        assert await count(db, "SELECT count(*) FROM scans") == 2
        consents = await count(
            db,
            "SELECT array[consent_marketing_at IS NOT NULL, consent_location_at IS NOT NULL] "
            "FROM members WHERE enrolled_at IS NOT NULL",
        )
        assert consents == [True, False]
        await context.close()

    async def test_english_and_location_only_after_consent(
        self, server: str, browser: Any, issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """An English browser gets English; location goes with scans only once the consumer agreed."""
        expect = playwright_api.expect
        context = await browser.new_context(
            locale="en-US",
            geolocation={"latitude": 31.2304, "longitude": 121.4737},
            permissions=["geolocation"],
        )
        page = await context.new_page()
        problems = PageProblems(page)
        await page.goto(server + path_of(issued.urls[1]))
        await expect(page.locator("#verdict-title")).to_have_text("Genuine · first scan")
        assert await count(db, "SELECT count(*) FROM scans WHERE lat IS NOT NULL") == 0

        await page.click("#location-share")  # not agreed yet: nothing happens but a hint
        await expect(page.locator("#location-state")).to_have_text("Tick the box to agree first.")
        await page.check("#location-agree")
        await page.click("#location-share")
        await expect(page.locator("#location-stop")).to_be_visible()

        await page.goto(server + path_of(issued.urls[2]))
        await expect(page.locator("#verdict-title")).to_have_text("Genuine · first scan")
        located = await count(db, "SELECT array[lat::float, lng::float] FROM scans WHERE lat IS NOT NULL")
        assert located == [31.23, 121.47]  # rounded to about 1 km by the service
        assert problems.seen == []
        await context.close()

    async def test_forged_code_and_rate_limit_messages(
        self, server: str, browser: Any, issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """A forged code says "could not verify" and is reported; too many scans read as a message."""
        expect = playwright_api.expect
        context = await browser.new_context(locale="en-GB")
        page = await context.new_page()
        problems = PageProblems(page)
        forged = path_of(issued.urls[3])[:-1] + ("A" if not issued.urls[3].endswith("A") else "B")
        await page.goto(server + forged)
        await expect(page.locator("h1")).to_have_text("Could not verify this code")
        await expect(page.locator("#logged")).to_be_visible()
        assert await count(db, "SELECT count(*) FROM counterfeit_scans") == 1

        # The device limit is low on this server: the page says so instead of showing a problem document.
        for url in issued.urls[4 : 4 + DEVICE_SCANS_PER_MINUTE]:
            await page.goto(server + path_of(url))
            await expect(page.locator("#verdict-title")).not_to_have_text("Checking the scan history…")
        await expect(page.locator("#verdict-title")).to_contain_text("Too many scans")
        await expect(page.locator("#retry")).to_be_visible()
        assert problems.seen == []
        await context.close()
