"""The consumer page in headless Chromium against a real `onecode serve`: scan, verdict, enrolment,
rewards (draw reveal, wallet, prize claim), privacy choices, and offline or slow networks."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import psycopg
import pytest

from campaigns import rewards
from codegen import keys
from service.models import Role
from service.pages.texts import TEXTS
from service.settings import Settings
from tests.campaigns.test_coupons import amount_template, coupon_campaign
from tests.campaigns.test_scan_rewards import draw_campaign, points_campaign
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
    """Script errors and console errors (policy violations among them) seen by the browser: none allowed.

    Chromium also logs every HTTP error answer as "Failed to load resource"; the tests provoke those on
    purpose (a wrong password, a refused export, a missing favicon), so they are not the page's errors.
    """

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"script error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
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


PHONE = {"width": 390, "height": 844}
ZH = TEXTS["zh-CN"]


async def launch_campaign(api: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> str:
    """Create and activate a campaign through the running server, as a marketer would."""
    created = await api.post("/v1/campaigns", json=body, headers=tenant.headers(Role.MARKETER))
    assert created.status_code == 201, created.text
    campaign_id: str = created.json()["id"]
    activated = await api.post(f"/v1/campaigns/{campaign_id}:activate", headers=tenant.headers(Role.MARKETER))
    assert activated.status_code == 200, activated.text
    return campaign_id


def cooler_bag_draw() -> dict[str, Any]:
    """A draw every scan wins: a physical prize, shipped to the address the winner gives."""
    prize = {"name": "保温杯", "kind": "physical", "weight": 1, "stock": 5, "cost_cents": 2_000}
    return draw_campaign(name="瓶盖抽奖", prizes=[prize])


async def see_it_shipped(
    page: Any, server: str, tenant: Tenant, campaign_id: str, scan_id: uuid.UUID, tmp_path: Path
) -> None:
    """The brand marks the prize shipped; the wallet, opened again, names the courier and tracking number."""
    expect = playwright_api.expect
    async with httpx.AsyncClient(base_url=server) as api:
        shipped = await api.post(
            f"/v1/campaigns/{campaign_id}/prize-claims/{scan_id}/ship",
            json={"carrier": "顺丰速运", "tracking_number": "SF1234567890123"},
            headers=tenant.headers(Role.OPERATIONS),
        )
        assert shipped.status_code == 200, shipped.text
    await page.click("#wallet > summary")
    await page.click("#wallet > summary")  # opened again: fetched afresh
    tracking = ZH["prize_tracking"].format(carrier="顺丰速运", tracking="SF1234567890123")
    await expect(page.locator("#wallet-prizes")).to_contain_text(ZH["prize_shipped"])
    await expect(page.locator("#wallet-prizes")).to_contain_text(tracking)
    await page.screenshot(path=str(tmp_path / "consumer-shipped-phone.png"), full_page=True)


class TestConsumerPagePolish:
    async def test_draw_reveal_then_claim_with_an_address(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        """A winning scan flips the draw card to the prize; the claim form shows field errors, then
        takes the address, which is stored sealed; the wallet lists the prize as claimed, then as shipped
        with its courier and tracking number."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            campaign_id = await launch_campaign(api, tenant_a, cooler_bag_draw())
        context = await browser.new_context(locale="zh-CN", viewport=PHONE)
        page = await context.new_page()
        problems = PageProblems(page)
        await page.goto(server + path_of(issued.urls[0]))
        await expect(page.locator("#verdict-title")).to_have_text("正品 · 首次扫码")
        await expect(page.locator("#reveal")).to_be_visible()
        await expect(page.locator("#reveal")).to_have_class(re.compile(r"\bflipped\b"))
        await expect(page.locator("#reveal-result")).to_have_text("保温杯")
        await expect(page.locator("#verdict-reward")).to_contain_text(ZH["reward_won"].format(prize="保温杯"))
        await expect(page.locator("#claim")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "consumer-draw-won-phone.png"), full_page=True)

        await page.fill("#claim-recipient", "张三")
        await page.fill("#claim-phone", "13800138000")
        await page.fill("#claim-address", "杭州")  # too short: the service says which field
        await page.click("#claim-submit")
        await expect(page.locator("#claim-address-error")).to_have_text(ZH["claim_err_address"])
        await expect(page.locator("#claim-address")).to_have_attribute("aria-invalid", "true")
        await page.fill("#claim-address", "浙江省杭州市西湖区文三路 100 号")
        await page.click("#claim-submit")
        await expect(page.locator("#claim-done")).to_be_visible()
        await expect(page.locator("#claim-address-error")).to_be_hidden()

        await page.click("#wallet > summary")
        await expect(page.locator("#wallet-prizes")).to_contain_text("保温杯")
        await expect(page.locator("#wallet-prizes")).to_contain_text("已提交收货地址")
        await page.screenshot(path=str(tmp_path / "consumer-claimed-phone.png"), full_page=True)
        assert problems.seen == []

        cur = await db.execute("SELECT scan_id, address_sealed, status FROM prize_claims")
        [(scan_id, sealed, status)] = await cur.fetchall()
        assert status == "claimed"
        assert "文三路".encode() not in bytes(sealed) and b"13800138000" not in bytes(sealed)
        opened = keys.unseal(
            [settings.master_key], bytes(sealed), aad=rewards.claim_aad(uuid.UUID(campaign_id), scan_id)
        )
        assert msgspec.json.decode(opened)["address"] == "浙江省杭州市西湖区文三路 100 号"

        # Once the brand ships it, the wallet shows the courier and the tracking number.
        await see_it_shipped(page, server, tenant_a, campaign_id, scan_id, tmp_path)
        assert problems.seen == []
        await context.close()

        # With reduced motion the card is turned at once: no wobble, same result, same text.
        calm = await browser.new_context(locale="zh-CN", viewport=PHONE, reduced_motion="reduce")
        page = await calm.new_page()
        problems = PageProblems(page)
        await page.goto(server + path_of(issued.urls[1]))
        await expect(page.locator("#verdict-reward")).to_contain_text("保温杯")
        assert await page.locator("#reveal").get_attribute("class") == "reveal flipped"
        assert await page.locator("#reveal-status").is_hidden()
        assert problems.seen == []
        await calm.close()

    async def test_wallet_shows_points_coupons_and_privacy_choices(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tmp_path: Path,
    ) -> None:
        """Points counted up on the verdict; the wallet (closed until tapped) shows the balance, the
        ledger line and the coupon; the privacy notice opens from the consent link; erasure asks twice."""
        expect = playwright_api.expect
        async with httpx.AsyncClient(base_url=server) as api:
            await launch_campaign(api, tenant_a, points_campaign(name="扫码积分", stackable=True))
            template = await api.post(
                "/v1/coupon-templates",
                json=amount_template(name="满20减5元券"),
                headers=tenant_a.headers(Role.MARKETER),
            )
            assert template.status_code == 201, template.text
            await launch_campaign(
                api, tenant_a, coupon_campaign(template.json()["id"], name="扫码领券", stackable=True)
            )
        context = await browser.new_context(locale="zh-CN", viewport=PHONE)
        page = await context.new_page()
        problems = PageProblems(page)
        await page.goto(server + path_of(issued.urls[0]))
        await expect(page.locator("#verdict-reward")).to_contain_text("本次扫码获得 100 积分")
        await expect(page.locator("#verdict-reward")).to_contain_text(
            ZH["reward_coupon"].partition("{code}")[0].format(name="满20减5元券")
        )
        await expect(page.locator("#verdict-points")).to_have_text(ZH["points"].format(points=100))
        await expect(page.locator("#reveal")).to_be_hidden()  # no draw, no card

        await expect(page.locator("#wallet-body")).to_be_hidden()
        await page.click("#wallet > summary")
        await expect(page.locator("#wallet-balance")).to_have_text(ZH["wallet_balance"].format(points=100))
        await expect(page.locator("#wallet-ledger")).to_contain_text("+100 获得 · 扫码积分")
        coupons = page.locator("#wallet-coupons")
        await expect(coupons).to_contain_text("满20减5元券")
        await expect(coupons).to_contain_text("立减 5 元 · 满 20 元可用")
        await expect(coupons).to_contain_text("可使用")
        await expect(coupons).to_contain_text("有效期至")
        await expect(page.locator("#wallet-prizes")).to_have_text(ZH["wallet_none"])
        await page.screenshot(path=str(tmp_path / "consumer-wallet-phone.png"), full_page=True)

        await expect(page.locator("#privacy > p").first).to_be_hidden()
        await page.click("#privacy-link")
        await expect(page.locator("#privacy")).to_contain_text(ZH["privacy_location"])
        await expect(page.locator("#export")).to_have_attribute("href", "/v1/members/me/export")
        await page.click("#erase")
        await expect(page.locator("#erase-confirm")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "consumer-privacy-phone.png"), full_page=True)
        await page.click("#erase-confirm")
        await expect(page.locator("#privacy-state")).to_have_text(ZH["privacy_erased"])
        await expect(page.locator("#wallet-card")).to_be_hidden()
        assert "oc_member" not in {c["name"] for c in await context.cookies()}
        assert problems.seen == []
        await context.close()

    async def test_offline_and_lost_answers_retry_into_one_scan(
        self,
        server: str,
        browser: Any,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        tmp_path: Path,
    ) -> None:
        """The answer is lost as the phone goes offline: the page says so, retries by itself once back
        online with the same Idempotency-Key, and the scan is recorded once. A refused request retries
        by the button, and a slow answer shows the "verifying" state first."""
        expect = playwright_api.expect
        context = await browser.new_context(locale="zh-CN", viewport=PHONE)
        page = await context.new_page()
        problems = PageProblems(page)
        keys_sent: list[str | None] = []

        async def lose_first_answer(route: Any) -> None:
            keys_sent.append(await route.request.header_value("idempotency-key"))
            if len(keys_sent) > 1:
                await route.continue_()
                return
            await route.fetch()  # the service records the scan; its answer never reaches the page
            await context.set_offline(True)
            await route.abort("internetdisconnected")

        await page.route("**/v1/scans", lose_first_answer)
        await page.goto(server + path_of(issued.urls[0]))
        await expect(page.locator("#verdict-title")).to_have_text(ZH["offline"])
        await expect(page.locator("#retry")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "consumer-offline-phone.png"), full_page=True)
        assert await count(db, "SELECT count(*) FROM scans WHERE code_index = 0") == 1
        await context.set_offline(False)  # the 'online' event retries by itself
        await expect(page.locator("#verdict-title")).to_have_text("正品 · 首次扫码")
        await expect(page.locator("#retry")).to_be_hidden()
        assert len(keys_sent) == 2 and keys_sent[0] is not None and keys_sent[0] == keys_sent[1]
        assert await count(db, "SELECT count(*) FROM scans WHERE code_index = 0") == 1
        await page.unroute("**/v1/scans")

        attempts: list[str] = []

        async def refuse_then_slow(route: Any) -> None:
            attempts.append(route.request.url)
            if len(attempts) == 1:
                await route.abort("connectionrefused")
                return
            await asyncio.sleep(1.8)
            await route.continue_()

        await page.route("**/v1/scans", refuse_then_slow)
        await page.goto(server + path_of(issued.urls[1]))
        await expect(page.locator("#verdict-title")).to_have_text(ZH["err_network"])
        assert await count(db, "SELECT count(*) FROM scans WHERE code_index = 1") == 0
        await page.click("#retry")
        await expect(page.locator("#verdict-title")).to_have_text(ZH["verifying_slow"])
        await expect(page.locator("#verdict")).to_have_class(re.compile(r"\bbusy\b"))
        await expect(page.locator("#verdict-title")).to_have_text("正品 · 首次扫码")
        await expect(page.locator("#verdict")).not_to_have_class(re.compile(r"\bbusy\b"))
        assert await count(db, "SELECT count(*) FROM scans WHERE code_index = 1") == 1
        assert problems.seen == []
        await context.close()
