"""The console's prize shipping page over HTTP: a draw's claims with addresses for those who ship (an
audited read, the API's own), waiting or shipped, paged by cursor; walled off from other roles."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from service.routes import console_campaigns
from service.settings import Settings
from tests.api.test_console_auth import sign_in
from tests.api.test_console_pages import user
from tests.campaigns.test_campaign_api import create
from tests.campaigns.test_fulfilment import ADDRESS, SHIPMENT, audit_entries, claimed_wins
from tests.campaigns.test_scan_rewards import points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language": "en"}


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


def prizes_url(campaign_id: str, query: str = "") -> str:
    return f"/console/campaigns/{campaign_id}/prizes{'?' + query if query else ''}"


def rows(page: str) -> list[str]:
    """The claims table's rows, one string each (the empty list's row is not a claim)."""
    body = page.split('<table id="claims">')[1].split("</tbody>", maxsplit=1)[0]
    return re.findall(r'<tr id="claim-[^"]+">.*?</tr>', body, re.DOTALL)


class TestPrizesPage:
    async def test_operations_sees_claims_waiting_with_addresses_ships_one_and_finds_it_shipped(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Signed in as operations: each waiting claim with prize, recipient, phone, address and postal code
        and a form that posts to the ship API; the CSV of claims to ship is linked. Once shipped (through
        the API with the page's CSRF token), the claim leaves the waiting list for the shipped one."""
        wins = await claimed_wins(client, tenant_a, issued, 2)
        campaign_id = wins[0].campaign_id
        await user(client, db, tenant_a, "ops@example.com", "operations")
        signed_in = await sign_in(client, "ops@example.com")
        assert signed_in.status_code == 200, signed_in.text
        page = await client.get(prizes_url(campaign_id), headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        assert len(page.content) < 300_000 and "https://" not in page.text
        first, second = rows(page.text)
        for shown in ("Cooler bag", "李雷0", ADDRESS["phone"], ADDRESS["address"], "310012"):
            assert shown in first, shown
        assert "李雷1" in second and "310012" not in second
        ship_path = f"/v1/campaigns/{campaign_id}/prize-claims/{wins[0].scan_id}/ship"
        assert f'data-ship="{ship_path}"' in first
        assert f'href="/v1/campaigns/{campaign_id}/prize-claims.csv?status=claimed"' in page.text
        assert 'id="more"' not in page.text
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        assert f'<meta name="csrf-token" content="{csrf["X-CSRF-Token"]}">' in page.text

        shipped = await client.post(ship_path, json=SHIPMENT, headers=csrf)
        assert shipped.status_code == 200, shipped.text
        waiting = await client.get(prizes_url(campaign_id))
        assert [wins[1].scan_id in r for r in rows(waiting.text)] == [True]
        left = await client.get(prizes_url(campaign_id, "status=shipped"))
        [row] = rows(left.text)
        assert wins[0].scan_id in row and SHIPMENT["carrier"] in row and SHIPMENT["tracking_number"] in row
        assert "data-ship" not in row
        assert 'aria-current="page">已发货<' in left.text

    async def test_every_opening_is_an_audited_read_of_the_range_shown_without_an_address(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 2)
        campaign_id = wins[0].campaign_id
        assert (
            await client.get(prizes_url(campaign_id), headers=tenant_a.headers(Role.OPERATIONS))
        ).is_success
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        assert (await client.get(prizes_url(campaign_id, "status=shipped"), headers=admin)).is_success
        reads = await audit_entries(db, "campaign.prize_claims_read")
        assert [(r[1], r[2]["status"], r[2]["rows"]) for r in reads] == [
            (campaign_id, "claimed", 2),
            (campaign_id, "shipped", 0),
        ]
        assert reads[0][0] != reads[1][0]  # each reader by name
        assert all("李雷" not in str(r[2]) and ADDRESS["phone"] not in str(r[2]) for r in reads)

    async def test_more_pages_by_the_cursor_of_the_last_claim_shown(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Pages of 2 over 3 claims: a "more" link to the third, none from there (no link to an empty page);
        a cursor this list never gave is the invalid-link page, as is an unknown status."""
        monkeypatch.setattr(console_campaigns, "CLAIMS_LISTED", 2)
        wins = await claimed_wins(client, tenant_a, issued, 3)
        campaign_id = wins[0].campaign_id
        ops = {**tenant_a.headers(Role.OPERATIONS), **BROWSER}
        first = await client.get(prizes_url(campaign_id), headers=ops)
        assert [w.scan_id in r for w, r in zip(wins, rows(first.text), strict=False)] == [True, True]
        more = re.search(r'id="more" href="([^"]+)"', first.text)
        assert more is not None
        second = await client.get(html.unescape(more.group(1)), headers=ops)
        assert second.status_code == 200, second.text
        [row] = rows(second.text)
        assert wins[2].scan_id in row and 'id="more"' not in second.text
        reads = await audit_entries(db, "campaign.prize_claims_read")
        assert [r[2]["rows"] for r in reads] == [2, 1]
        assert reads[1][2]["after"] == reads[0][2]["through"]
        for query in ("after=yesterday", "status=lost"):
            wrong = await client.get(prizes_url(campaign_id, query), headers=ops)
            assert wrong.status_code == 422 and "conditions are not valid" in wrong.text, query

    async def test_customer_service_and_marketers_get_the_forbidden_page_and_no_read(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Customer service answers one winner at a time through the API, never the whole list; marketers,
        finance and auditors do not read addresses at all."""
        wins = await claimed_wins(client, tenant_a, issued, 1)
        url = prizes_url(wins[0].campaign_id)
        for role in (Role.CUSTOMER_SERVICE, Role.MARKETER, Role.FINANCE, Role.AUDITOR):
            page = await client.get(url, headers={**tenant_a.headers(role), **BROWSER})
            assert page.status_code == 403, role
            assert "Your role may not open this page" in page.text and "李雷" not in page.text
        assert await audit_entries(db, "campaign.prize_claims_read") == []

    async def test_another_brands_draw_is_not_found(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 1)
        foreign = {**tenant_b.headers(Role.OPERATIONS), **BROWSER}
        for campaign_id in (wins[0].campaign_id, str(uuid.uuid4())):
            page = await client.get(prizes_url(campaign_id), headers=foreign)
            assert page.status_code == 404 and "李雷" not in page.text
        assert await audit_entries(db, "campaign.prize_claims_read") == []

    async def test_an_erased_winner_shows_no_address_and_no_form(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 1)
        await db.execute("UPDATE prize_claims SET address_sealed = NULL")
        ops = {**tenant_a.headers(Role.OPERATIONS), **BROWSER}
        [row] = rows((await client.get(prizes_url(wins[0].campaign_id), headers=ops)).text)
        assert "erased their personal data" in row and "data-ship" not in row


class TestCampaignPageLink:
    async def test_a_draw_with_a_physical_prize_links_its_shipping_page_for_those_who_ship_only(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        wins = await claimed_wins(client, tenant_a, issued, 1)
        campaign_id = wins[0].campaign_id
        link = f'id="prize-claims" href="/console/campaigns/{campaign_id}/prizes"'
        for role in (Role.BRAND_ADMIN, Role.OPERATIONS):
            page = await client.get(f"/console/campaigns/{campaign_id}", headers=tenant_a.headers(role))
            assert page.status_code == 200 and link in page.text, role
        for role in (Role.CUSTOMER_SERVICE, Role.MARKETER, Role.AUDITOR):
            page = await client.get(f"/console/campaigns/{campaign_id}", headers=tenant_a.headers(role))
            assert page.status_code == 200, role
            assert "/prizes" not in page.text, role
        points = (await create(client, tenant_a, points_campaign()))["id"]
        page = await client.get(f"/console/campaigns/{points}", headers=tenant_a.headers(Role.OPERATIONS))
        assert page.status_code == 200 and "/prizes" not in page.text  # nothing to ship
