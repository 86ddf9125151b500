"""Console bugs QA found, each proved over HTTP: empty filter fields, dict-method text keys, campaign
dates in their own zone, layout at phone width, single error messages, error pages for unknown URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from service.models import Role
from service.pages.console_texts import TEXTS
from service.routes import console_common
from tests.api.test_console_auth import sign_in
from tests.api.test_console_pages import user
from tests.campaigns.test_campaign_api import points_body
from tests.conftest import Tenant


class TestFilterForms:
    async def test_empty_fields_are_no_filter_and_reversed_days_say_so(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """A filter form sends its empty fields (`since=`); such links are the unfiltered page, and days
        that end before they start show the page with a message beside the filter, not a 422."""
        client.cookies.clear()
        await user(client, db, tenant_a, "admin@example.com", "brand_admin")
        assert (await sign_in(client, "admin@example.com")).status_code == 200
        for path in (
            "/console/audit?action=batch.&object_type=&actor=&since=&until=",
            "/console/audit?since=",
            "/console/kpis?since=&until=&segment_id=",
            "/console/kpis?segment_id=",
        ):
            page = await client.get(path)
            assert page.status_code == 200, (path, page.text)
            assert 'id="range-error"' not in page.text
        for path in (
            "/console/audit?since=2026-02-01&until=2026-01-01",
            "/console/kpis?since=2026-02-01&until=2026-01-01",
        ):
            page = await client.get(path, headers={"Accept-Language": "en"})
            assert page.status_code == 200, (path, page.text)
            assert "The first day is after the last day" in page.text
        # A malformed day or id is still the link's error.
        assert (await client.get("/console/audit?since=2026-13-01")).status_code == 422
        assert (await client.get("/console/kpis?segment_id=not-a-segment")).status_code == 422

    async def test_the_portal_takes_empty_fields(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """The distributor portal's filter form, sent with every field empty, is the default page."""
        east = await client.post(
            "/v1/distributors",
            json={"name": "East", "regions": ["CN-ZJ"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        client.cookies.clear()
        await user(client, db, tenant_a, "dist@example.com", "distributor", distributor_id=east.json()["id"])
        assert (await sign_in(client, "dist@example.com")).status_code == 200
        page = await client.get("/console/portal?since=&until=&region=")
        assert page.status_code == 200, page.text
        assert 'id="diversions">0<' in page.text and 'id="range-error"' not in page.text
        future = await client.get("/console/portal?since=2999-01-01")
        assert future.status_code == 200 and 'id="range-error"' in future.text


class TestTextKeys:
    async def test_the_shipments_header_says_items(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """The key `items` is also a dict method: `t.items` printed the method, not the word."""
        client.cookies.clear()
        await user(client, db, tenant_a, "ops@example.com", "operations")
        assert (await sign_in(client, "ops@example.com")).status_code == 200
        page = await client.get("/console/shipments", headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        assert "<th>Items</th>" in page.text and "built-in method" not in page.text

    def test_no_template_reads_a_text_named_like_a_dict_method_as_an_attribute(self) -> None:
        """Jinja's `t.key` finds a dict's method before its item: such keys must be read as `t["key"]`."""
        clashing = {key for words in TEXTS.values() for key in words if hasattr(dict, key)}
        pages = Path(console_common.__file__).parent.parent / "pages"
        for template in pages.glob("*.html"):
            for key in clashing:
                assert not re.search(rf"\bt\.{key}\b", template.read_text()), (template.name, key)


class TestCampaignList:
    async def test_the_list_shows_the_schedule_on_the_campaigns_clock(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """1 March to 1 April in Shanghai was listed as 28 February to 31 March (UTC days)."""
        body = points_body(
            name="Spring in Shanghai",
            starts_at="2027-03-01T00:00:00+08:00",
            ends_at="2027-04-01T00:00:00+08:00",
            eligibility={"first_scan_only": True},
            points_reward={"points": 10},
        )
        created = await client.post("/v1/campaigns", json=body, headers=tenant_a.headers(Role.MARKETER))
        assert created.status_code == 201, created.text
        client.cookies.clear()
        await user(client, db, tenant_a, "marketer@example.com", "marketer")
        assert (await sign_in(client, "marketer@example.com")).status_code == 200
        listed = await client.get("/console/campaigns")
        assert listed.status_code == 200, listed.text
        assert "2027-03-01 \u2013 2027-04-01" in listed.text  # an en dash between the days


class TestUnknownAddresses:
    async def test_a_browser_gets_the_consoles_page_and_a_script_the_problem(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        client.cookies.clear()
        await user(client, db, tenant_a, "lost@example.com", "brand_admin")
        assert (await sign_in(client, "lost@example.com")).status_code == 200
        html = {"Accept": "text/html"}
        for path in ("/console/nonexistent", "/console/campaigns/not-a-uuid", "/console/members/123"):
            page = await client.get(path, headers=html)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert 'href="/console' in page.text, path
            problem = await client.get(path, headers={"Accept": "application/json"})
            assert problem.status_code == 404
            assert problem.headers["content-type"].startswith("application/problem+json")
        api = await client.get("/v1/nonexistent", headers=html)
        assert api.status_code == 404
        assert api.headers["content-type"].startswith("application/problem+json")
