"""The consumer page over HTTP: GET of a printed URL renders HTML, verifies in process, records nothing."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis.asyncio
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from codegen import batches, keyring, products
from codegen.gtin import check_digit, make_sscc
from codegen.models import BatchIn, ProductIn
from service.pages.texts import TEXTS, Lang
from service.routes.consumer import pick_language
from service.settings import Settings
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

ZH = "zh-CN,zh;q=0.9,en;q=0.8"
EN = "en-US,en;q=0.9,zh-CN;q=0.5"
HOSTILE_NAME = '<script>alert("name")</script> & Co'
HOSTILE_FACTS = {"<b>origin</b>": "<img src=x onerror=alert(1)>", "note": "</dd></dl><script>x()</script>"}
# src/href/url()/@import pointing anywhere but this page: the page must load nothing from elsewhere.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|action)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)(?:[a-z]+:|//)""", re.IGNORECASE
)


def gtin14(payload13: str) -> str:
    return payload13 + str(check_digit(payload13))


def path_of(url: str) -> str:
    """The path (and query) a phone's browser requests for a printed URL."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id)


async def page(client: AsyncTestClient[Any], path: str, language: str = ZH) -> Any:
    return await client.get(path, headers={"Accept-Language": language})


async def recorded(db: psycopg.AsyncConnection[Any]) -> tuple[int, ...]:
    """Row counts of every table a scan writes to."""
    counts = []
    for table in ("scans", "code_claims", "counterfeit_scans", "members", "member_devices"):
        cur = await db.execute(f"SELECT count(*) FROM {table}")
        row = await cur.fetchone()
        assert row is not None
        counts.append(int(row[0]))
    return tuple(counts)


async def redis_keys(settings: Settings) -> set[bytes]:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    try:
        return {key async for key in client.scan_iter(match=f"{settings.redis_prefix}*")}
    finally:
        await client.aclose()


class TestGenuinePage:
    async def test_zh_cn_by_default_with_product_and_batch_facts(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """Without a language preference the page is Chinese and shows name, GTIN, lot and facts."""
        response = await client.get(path_of(issued.urls[0]))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        text = response.text
        assert '<html lang="zh-CN">' in text
        assert "防伪码验证通过" in text
        assert "Demo Lager 500ml" in text
        assert "09506000134352" in text
        assert "L2026-11" in text
        assert "Qingdao" in text
        assert "成为会员" in text  # the enrolment form is on the page, shown after the scan post

    async def test_english_when_the_browser_prefers_it(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """Accept-Language ranking English above Chinese gives the English page."""
        text = (await page(client, path_of(issued.urls[0]), EN)).text
        assert '<html lang="en">' in text
        assert "Authentic code" in text and "Become a member" in text
        assert "防伪码" not in text
        zh = (await page(client, path_of(issued.urls[0]), ZH)).text
        assert '<html lang="zh-CN">' in zh

    async def test_small_and_self_contained(self, client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
        """Under 60 KB, with no reference to another host: no fonts, CDNs, images or external scripts."""
        for language in (ZH, EN):
            response = await page(client, path_of(issued.urls[0]), language)
            assert len(response.content) < 60 * 1024
            assert EXTERNAL.search(response.text) is None, EXTERNAL.search(response.text)
            assert "<link" not in response.text and "<img" not in response.text
            assert re.search(r"<script[^>]*\bsrc=", response.text) is None

    async def test_security_headers(self, client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
        """Strict CSP with a fresh nonce per response, no-store, nosniff, no referrer."""
        first = await client.get(path_of(issued.urls[0]))
        csp = first.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
        assert nonce is not None
        assert f"style-src 'nonce-{nonce.group(1)}'" in csp
        # Every script and style element carries the nonce; nothing else can run.
        tags = re.findall(r"<(script|style)\b([^>]*)>", first.text)
        assert tags and all(f'nonce="{nonce.group(1)}"' in attrs for _, attrs in tags)
        assert first.headers["cache-control"] == "no-store"
        assert first.headers["x-content-type-options"] == "nosniff"
        assert first.headers["referrer-policy"] == "no-referrer"
        second = await client.get(path_of(issued.urls[0]))
        assert second.headers["content-security-policy"] != csp

    async def test_get_records_no_scan(
        self,
        client: AsyncTestClient[Any],
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
    ) -> None:
        """Link previewers fetch URLs: GETs of genuine and forged codes write nothing anywhere."""
        await client.get("/healthz")  # the app is up before the counting starts
        before, keys_before = await recorded(db), await redis_keys(settings)
        for _ in range(3):
            assert (await client.get(path_of(issued.urls[0]))).status_code == 200
            assert (await client.get(path_of(issued.urls[1][:-1] + "A"))).status_code == 200
        assert await recorded(db) == before
        assert await redis_keys(settings) == keys_before
        # The page's own POST then counts as the first scan: nothing was used up by the GETs.
        scan = await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-page-1"})
        assert scan.json()["verdict"] == "genuine_first"

    async def test_head_answers_like_get_without_a_body(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Uptime monitors and link checkers ask with HEAD: the pages answer it (records nothing), the
        JSON API keeps its 405."""
        before = await recorded(db)
        forged = path_of(issued.urls[1][:-1] + "A")
        for path in (path_of(issued.urls[0]), forged, "/healthz", "/console/sign-in"):
            get, head = await client.get(path), await client.head(path)
            assert (head.status_code, head.content) == (200, b""), path
            assert head.headers["content-type"] == get.headers["content-type"], path
            assert head.headers["content-length"] == str(len(get.content)), path
        assert await recorded(db) == before
        # The latency metric names the route and the method the client used.
        labels = {"route": "/healthz", "method": "HEAD", "status": "200"}
        assert REGISTRY.get_sample_value("onecode_http_request_duration_seconds_count", labels)
        assert (await client.head("/v1/campaigns")).status_code == 405
        # The router may take `//v1/...` for the API's path too: never answered as a page.
        assert (await client.head("//v1/campaigns")).status_code in {404, 405}

    async def test_tolerates_qualifiers_and_phone_quirks(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """Extra GS1 qualifiers in the query, a lowercased path and a trailing slash still verify."""
        path = path_of(issued.urls[2])
        for variant in (f"{path}?17=271231&10=L2026-11", path.lower(), path + "/"):
            response = await client.get(variant)
            assert response.status_code == 200, variant
            assert "防伪码验证通过" in response.text, variant

    async def test_short_brand_form(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Products without a GTIN print /C/<brand code>/<serial>; the page serves that form too."""
        short = await issue_batch(db, settings, tenant_a.brand_id, gtin=None, name="Craft Soda")
        path = path_of(short.urls[0])
        assert path.startswith("/C/")
        for variant in (path, path.lower()):
            response = await client.get(variant)
            assert response.status_code == 200, variant
            assert "Craft Soda" in response.text and "防伪码验证通过" in response.text


class TestCouldNotVerify:
    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda p: p[:-1] + ("A" if p[-1] != "A" else "B"), id="forged-serial"),
            pytest.param(lambda p: p.replace("09506000134352", gtin14("0000000000017")), id="unknown-gtin"),
            pytest.param(lambda p: p.replace("09506000134352", "09506000134353"), id="bad-check-digit"),
            pytest.param(lambda p: p[:-1] + "1", id="not-base32"),
        ],
    )
    async def test_forged_codes_get_a_clear_answer(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, mutate: Any
    ) -> None:
        """A code-shaped URL that does not verify: 200 with "could not verify", no product facts."""
        for language, heading in ((ZH, "无法验证此码"), (EN, "Could not verify this code")):
            response = await page(client, mutate(path_of(issued.urls[3])), language)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            assert heading in response.text
            assert "Demo Lager" not in response.text and "L2026-11" not in response.text
            assert response.headers["cache-control"] == "no-store"

    async def test_voided_batch(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """Codes of a voided batch are not vouched for: the page shows neither product nor batch."""
        voided = await client.post(f"/v1/batches/{issued.batch.id}/void", headers=tenant_a.headers())
        assert voided.status_code == 200, voided.text
        response = await client.get(path_of(issued.urls[4]))
        assert response.status_code == 200
        assert "无法验证此码" in response.text and "Demo Lager" not in response.text

    @pytest.mark.parametrize(
        "path",
        [
            "/01/12345/21/HELLO",
            "/01/09506000134352/21/SHORT",
            "/C/x/y",
            "/c/BRAND/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "/01/09506000134352/10/L1/21/AAAAAAAAAAAAAAAAAAAA",
            "/01/x",
            "/01/09506000134352/21/" + "A" * 200,
        ],
    )
    async def test_junk_paths_are_404_pages(self, client: AsyncTestClient[Any], path: str) -> None:
        """Paths that are not code-shaped at all: a 404 HTML page, never problem+json or a reflection."""
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "无法验证此码" in response.text
        assert "<script>alert" not in response.text
        assert "<script" not in response.text  # nothing runs on a page that is not about a code

    async def test_a_case_label_says_what_it_is(self, client: AsyncTestClient[Any]) -> None:
        """The URL printed on a case's or pallet's label (/00/<SSCC>, see codegen.aggregation): a page
        saying it is a shipping label, not an error; a number that is no SSCC gets the 404 page."""
        sscc = make_sscc(0, "0614141", "123456789")
        labelled = await client.get(f"/00/{sscc}", headers={"Accept-Language": "en"})
        assert labelled.status_code == 200
        assert labelled.headers["content-type"].startswith("text/html")
        assert "Shipping label" in labelled.text and sscc in labelled.text
        assert "<script" not in labelled.text
        assert "物流标签" in (await client.get(f"/00/{sscc}/")).text
        wrong = sscc[:-1] + str((int(sscc[-1]) + 1) % 10)
        for path in (f"/00/{wrong}", "/00/123", "/00/%3Cscript%3E"):
            refused = await client.get(path)
            assert refused.status_code == 404, path
            assert "<script" not in refused.text


class TestEscaping:
    async def test_brand_supplied_text_is_escaped(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """A product name and facts holding markup are shown as text: only our own script tag remains."""
        product = await products.create_product(
            db,
            actor="test",
            brand_id=tenant_a.brand_id,
            data=ProductIn(name=HOSTILE_NAME, gtin=gtin14("0950600013437"), facts=HOSTILE_FACTS),
        )
        batch = await batches.create_batch(
            db,
            actor="test",
            brand_id=tenant_a.brand_id,
            data=BatchIn(product_id=product.id, quantity=3, lot='L"><script>'),
            master_key=settings.master_key,
        )
        key = keyring.code_key(
            await keyring.get_key(db, tenant_a.brand_id, batch.key_id), settings.all_master_keys
        )
        url = next(
            url
            for chunk in batches.printed_codes(
                batch, product, brand_code="", key=key, scan_domain=settings.scan_domain, start=0, stop=1
            )
            for _, _, url in chunk
        )
        response = await client.get(path_of(url))
        assert response.status_code == 200, response.text
        text = response.text
        assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt; &amp; Co" in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
        assert "&lt;b&gt;origin&lt;/b&gt;" in text
        assert "L&quot;&gt;&lt;script&gt;" in text
        assert text.count("<script") == 1  # the page's own, nonce-carrying script
        assert "<img" not in text and "<b>" not in text


class TestLanguage:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (None, "zh-CN"),
            ("", "zh-CN"),
            ("en", "en"),
            ("en-GB,en;q=0.9", "en"),
            ("zh-TW,zh;q=0.9,en;q=0.8", "zh-CN"),
            ("fr-FR,en;q=0.5,zh;q=0.9", "zh-CN"),
            ("fr-FR,en;q=0.5", "en"),
            ("de", "zh-CN"),
            ("zh;q=0.2,en;q=0.3", "en"),
            ("en;q=bogus,zh", "zh-CN"),
            ("*", "zh-CN"),
        ],
    )
    def test_pick_language(self, header: str | None, expected: str) -> None:
        """English only when the browser ranks it above Chinese; Chinese is the default."""
        assert pick_language(header) == expected


class TestTextsAndNotices:
    def test_both_languages_have_the_same_texts_and_placeholders(self) -> None:
        """Every key in Chinese has its English twin with the same {placeholders}: the script fills both."""
        zh, en = TEXTS["zh-CN"], TEXTS["en"]
        assert zh.keys() == en.keys()
        for key in zh:
            assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key

    @pytest.mark.parametrize(("language", "lang"), [(ZH, "zh-CN"), (EN, "en")])
    async def test_privacy_notice_consents_wallet_and_claim_form(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, language: str, lang: Lang
    ) -> None:
        """The genuine page carries the privacy notice (with export), clear consent texts, the wallet
        (closed) and the claim form (hidden until a prize needs it), in the page's language."""
        text = (await page(client, path_of(issued.urls[0]), language)).text
        shown = TEXTS[lang]
        for key in (
            "privacy_title",
            "privacy_device",
            "privacy_location",
            "privacy_phone",
            "privacy_rights",
            "consent_marketing",
            "consent_location",
            "privacy_consents",
            "privacy_marketing",
            "privacy_location_use",
            "privacy_consents_saved",
            "wallet_title",
            "claim_title",
            "claim_address",
        ):
            assert html.escape(shown[key]) in text, key
        assert 'href="/v1/members/me/export"' in text
        assert re.search(r'<details id="wallet">', text)  # no `open`: collapsed until tapped
        assert re.search(r'<section class="card" id="claim" hidden>', text)

    async def test_could_not_verify_page_has_the_privacy_notice(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """A forged code's page is reported by its script too, so it says what is recorded."""
        forged = path_of(issued.urls[3])[:-1] + ("A" if not issued.urls[3].endswith("A") else "B")
        text = (await page(client, forged, EN)).text
        assert html.escape(TEXTS["en"]["privacy_device"]) in text
