"""Console pages over HTTP: sign-in page, the dashboard by role, language, escaping."""

from __future__ import annotations

import uuid
import zoneinfo
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from service import audit
from service.models import Role
from service.routes.console_antifraud import LISTED
from service.settings import Settings
from tests.antifraud.test_clones import PROVINCES, set_rules
from tests.antifraud.test_clones import scan as clone_scan
from tests.api.test_console_auth import PASSWORD, last_mail, sign_in
from tests.api.test_errors import assert_problem
from tests.campaigns.test_scan_rewards import draw_campaign, launch, points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch
from tests.members.test_member_admin import enrolled_member


async def user(
    client: AsyncTestClient[Any],
    db: psycopg.AsyncConnection[Any],
    tenant: Tenant,
    email: str,
    role: str,
    **extra: Any,
) -> None:
    invited = await client.post(
        "/v1/users/invitations",
        json={"email": email, "role": role, **extra},
        headers=tenant.headers(Role.BRAND_ADMIN),
    )
    assert invited.status_code == 201, invited.text
    token = await last_mail(db, email)
    assert (
        await client.post("/console/invitations/accept", json={"token": token, "password": PASSWORD})
    ).status_code == 201


async def home_of(client: AsyncTestClient[Any]) -> str:
    """Where /console sends the session the client carries."""
    home = await client.get("/console", follow_redirects=False)
    assert home.status_code == 302, home.text
    return str(home.headers["location"])


class TestConsolePages:
    async def test_sign_in_page_and_dashboard_by_role(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        page = await client.get("/console/sign-in")
        assert page.status_code == 200 and "登录" in page.text
        assert "Sign in" in (await client.get("/console/sign-in", headers={"Accept-Language": "en"})).text
        assert len(page.content) < 300_000 and "http://" not in page.text and "https://" not in page.text
        assert (await client.get("/console", follow_redirects=False)).headers[
            "location"
        ] == "/console/sign-in"
        assert (await client.get("/console/dashboard")).status_code == 401

        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-console-1"})
        await launch(client, tenant_a, points_campaign(name="<script>alert(1)</script> week"))
        client.cookies.clear()
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        dashboard = await client.get("/console/dashboard")
        assert dashboard.status_code == 200, dashboard.text
        assert 'id="scans-today">1<' in dashboard.text and "mkt@example.com" in dashboard.text
        assert "<svg" in dashboard.text and len(dashboard.content) < 300_000
        assert "&lt;script&gt;alert(1)&lt;/script&gt; week" in dashboard.text  # brand text is escaped

        distributor = await client.post(
            "/v1/distributors",
            json={"name": "East", "regions": ["CN-ZJ"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        client.cookies.clear()
        await user(
            client, db, tenant_a, "dist@example.com", "distributor", distributor_id=distributor.json()["id"]
        )
        assert (await sign_in(client, "dist@example.com")).status_code == 200
        assert (await client.get("/console/dashboard")).status_code == 403
        # Home (the sign-in's and every error page's way back) is the portal, not the dashboard's 403.
        assert await home_of(client) == "/console/portal"
        portal = await client.get("/console/portal")
        assert portal.status_code == 200, portal.text
        assert 'id="diversions">0<' in portal.text and "/v1/reports/diversion?since=" in portal.text
        assert (await client.get("/v1/reports/diversion?format=csv")).status_code == 200  # the export link
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        assert (await client.get("/console/portal")).status_code == 403
        assert await home_of(client) == "/console/dashboard"
        client.cookies.clear()
        await user(client, db, tenant_a, "till@example.com", "point_of_sale")
        assert (await sign_in(client, "till@example.com")).status_code == 200
        assert await home_of(client) == "/console/account"
        client.cookies.set("onecode_console", "a-session-that-is-over-0123456789")
        assert await home_of(client) == "/console/sign-in"

    async def test_a_browser_opening_a_page_gets_pages_not_problems(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Without a session a page sends the browser to sign in (and back); an error is a page in the
        browser's language with a way back; a script asking for JSON still gets the problem."""
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language": "en"}
        signed_out = await client.get("/console/antifraud?days=7", headers=browser, follow_redirects=False)
        assert signed_out.status_code == 302, signed_out.text
        assert signed_out.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fantifraud%3Fdays%3D7"
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        for path, status, words in (
            (f"/console/members/{uuid.uuid4()}", 404, "This page or object does not exist"),
            ("/console/settings", 403, "Your role may not open this page"),
            ("/console/audit?since=2026-13-01", 403, "Your role may not open this page"),
        ):
            page = await client.get(path, headers=browser)
            assert (page.status_code, page.headers["content-type"]) == (status, "text/html; charset=utf-8"), (
                path
            )
            assert words in page.text and 'href="/console"' in page.text, page.text
        as_admin = {**browser, **tenant_a.headers(Role.BRAND_ADMIN)}
        invalid = await client.get("/console/audit?since=2026-13-01", headers=as_admin)
        assert invalid.status_code == 422 and "The link&#39;s conditions are not valid" in invalid.text
        problem = await client.get(f"/console/members/{uuid.uuid4()}", headers={"Accept": "application/json"})
        assert_problem(problem, 404, "not-found")

    async def test_member_pages_show_what_the_role_may_see(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        member_id = await enrolled_member(client, db, issued.urls[0], "device-console-m")
        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        search = await client.get("/console/members")
        assert search.status_code == 200 and "/v1/members:search" in search.text
        page = await client.get(f"/console/members/{member_id}")
        assert page.status_code == 200, page.text
        assert (
            "+8613800138000" in page.text and "扫码" in page.text
        )  # full phone, and the scan in the timeline
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        masked = await client.get(f"/console/members/{member_id}", headers={"Accept-Language": "en"})
        assert "+86138****8000" in masked.text and "13800138000" not in masked.text
        assert (await client.get(f"/console/members/{uuid.uuid4()}")).status_code == 404

    async def test_the_member_timeline_names_campaigns_prizes_and_products(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """A draw shows its campaign's and prize's names, a scan its product's, a note who wrote it; the ids
        stay behind them (a title, a link to the campaign for the roles that open campaigns), and the
        JSON timeline keeps its ids."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        campaign_id = await launch(client, tenant_a, draw_campaign(name="Summer <b>cap</b> draw"))
        member_id = await enrolled_member(client, db, issued.urls[0], "device-console-t")
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        noted = await client.post(f"/v1/members/{member_id}/notes", json={"body": "called"}, headers=cs)
        assert noted.status_code == 201, noted.text
        entries = (await client.get(f"/v1/members/{member_id}/timeline", headers=cs)).json()
        [draw] = [e for e in entries if e["kind"] == "draw"]
        assert draw["detail"]["campaign_id"] == campaign_id  # the API's contract is unchanged
        cur = await db.execute("SELECT name FROM products WHERE brand_id = %s", (tenant_a.brand_id,))
        product = (await cur.fetchone() or [""])[0]

        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        page = await client.get(f"/console/members/{member_id}")
        assert page.status_code == 200, page.text
        timeline = page.text.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        # Customer service opens campaigns (read-only): the draw links to its campaign.
        assert (
            f'活动: <a href="/console/campaigns/{campaign_id}" title="{campaign_id}">'
            "Summer &lt;b&gt;cap&lt;/b&gt; draw</a>"
        ) in timeline
        assert "奖品: <span" in timeline and ">Cooler bag</span>" in timeline
        assert f">{product}</span>" in timeline
        assert ">customer_service</span>" in timeline  # the note's author: the token's name
        assert f"campaign_id: {campaign_id}" not in timeline and f">{campaign_id}<" not in timeline
        # Codes in words: the scan's verdict, the draw's result (the code stays behind it).
        assert '验证结果: <span title="genuine_first">正品·首次</span>' in timeline
        assert f'结果: <span title="{draw["detail"]["result"]}">' in timeline
        assert f">{draw['detail']['result']}<" not in timeline
        client.cookies.clear()
        await user(client, db, tenant_a, "fin@example.com", "finance")
        assert (await sign_in(client, "fin@example.com")).status_code == 200
        page = await client.get(f"/console/members/{member_id}")
        timeline = page.text.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        # Finance does not open campaigns: the name, its id in a title, no link.
        assert f'活动: <span title="{campaign_id}">Summer &lt;b&gt;cap&lt;/b&gt; draw</span>' in timeline
        assert "/console/campaigns/" not in timeline
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        english = await client.get(f"/console/members/{member_id}", headers={"Accept-Language": "en"})
        timeline = english.text.split('id="timeline"', 1)[1].split("</table>", 1)[0]
        assert (
            f'Campaign: <a href="/console/campaigns/{campaign_id}" title="{campaign_id}">'
            "Summer &lt;b&gt;cap&lt;/b&gt; draw</a>"
        ) in timeline

    async def test_campaign_pages_editor_and_live_page(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
    ) -> None:
        client.cookies.clear()
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        await user(client, db, tenant_a, "audit@example.com", "auditor")
        signed_in = await sign_in(client, "mkt@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        listing = await client.get("/console/campaigns")
        assert listing.status_code == 200 and 'id="new-campaign"' in listing.text
        editor = await client.get("/console/campaigns/new")
        assert editor.status_code == 200 and "/v1/campaigns:validate" in editor.text
        # The page carries the session's CSRF token for the writes it makes through the API.
        assert f'<meta name="csrf-token" content="{csrf["X-CSRF-Token"]}">' in editor.text
        assert len(editor.content) < 300_000 and "https://" not in editor.text

        # What the editor checks as the marketer types: the create rules, nothing saved.
        prize = {"name": "Car", "kind": "physical", "weight": 1, "stock": 1, "cost_cents": 6_000_000}
        checked = await client.post(
            "/v1/campaigns:validate",
            json=draw_campaign(prizes=[prize], no_prize_weight=99),
            headers=csrf,
        )
        assert checked.status_code == 200, checked.text
        assert checked.json()["valid"] and "legal cap" in checked.json()["warnings"][0]
        wrong = await client.post(
            "/v1/campaigns:validate",
            json=points_campaign(ends_at="2020-01-01T00:00:00+00:00", points_reward=None),
            headers=csrf,
        )
        assert wrong.status_code == 422
        fields = {e["field"] for e in wrong.json()["errors"]}
        assert {"ends_at", "points_reward"} <= fields, wrong.json()
        assert (await client.post("/v1/campaigns:validate", json=points_campaign())).status_code == 403
        cur = await db.execute("SELECT count(*) FROM campaigns")
        assert (await cur.fetchone() or [1])[0] == 0

        created = await client.post("/v1/campaigns", json=draw_campaign(no_prize_weight=3), headers=csrf)
        campaign_id = created.json()["id"]
        page = await client.get(f"/console/campaigns/{campaign_id}")
        assert page.status_code == 200, page.text
        assert 'data-step="activate"' in page.text and 'data-step="pause"' not in page.text
        assert "25.00%" in page.text  # weight 1 against no-prize 3
        assert f'href="/console/campaigns/{campaign_id}/edit"' in page.text
        editor_of_draft = await client.get(f"/console/campaigns/{campaign_id}/edit")
        assert editor_of_draft.status_code == 200 and '"name": "Lucky cap"' in editor_of_draft.text
        assert (await client.post(f"/v1/campaigns/{campaign_id}:activate", headers=csrf)).status_code == 200
        live = await client.get(f"/console/campaigns/{campaign_id}", headers={"Accept-Language": "en"})
        assert 'data-step="pause"' in live.text and "Active" in live.text and "winners.csv" in live.text
        assert "/edit" not in live.text.split("<main>")[1]  # a live campaign changes by its steps
        moved = await client.get(f"/console/campaigns/{campaign_id}/edit", follow_redirects=False)
        assert (
            moved.status_code in {302, 303}
            and moved.headers["location"] == f"/console/campaigns/{campaign_id}"
        )

        # An auditor reads campaigns, but neither edits nor steps them.
        client.cookies.clear()
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        assert 'id="new-campaign"' not in (await client.get("/console/campaigns")).text
        assert 'data-step="' not in (await client.get(f"/console/campaigns/{campaign_id}")).text
        assert (await client.get("/console/campaigns/new")).status_code == 403
        other = await client.get(f"/console/campaigns/{uuid.uuid4()}")
        assert other.status_code == 404

    async def test_customer_service_finds_a_campaign_read_only(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
    ) -> None:
        """Customer service opens the campaigns list and a campaign's page with its winners export: no
        steps, no editor, no live figures (those are the campaign readers')."""
        campaign_id = await launch(client, tenant_a, draw_campaign())
        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        listing = await client.get("/console/campaigns")
        assert listing.status_code == 200 and f'href="/console/campaigns/{campaign_id}"' in listing.text
        assert 'id="new-campaign"' not in listing.text and 'href="/console/campaigns"' in listing.text
        page = await client.get(f"/console/campaigns/{campaign_id}")
        assert page.status_code == 200 and "winners.csv" in page.text
        assert 'data-step="' not in page.text and 'id="figures"' not in page.text
        assert (await client.get("/console/campaigns/new")).status_code == 403
        assert (await client.get(f"/console/campaigns/{campaign_id}/edit")).status_code == 403

    async def test_segment_page_export_only_for_roles_that_may(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
    ) -> None:
        saved = await client.post(
            "/v1/segments",
            json={"name": "Dormant", "filter": {"lifecycle": ["dormant"]}},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert saved.status_code == 201, saved.text
        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "mkt@example.com", "marketer")
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        page = await client.get("/console/segments")
        assert page.status_code == 200 and "Dormant" in page.text
        assert "members.csv" not in page.text and 'id="save-segment"' not in page.text
        export = await client.get(f"/v1/segments/{saved.json()['id']}/members.csv")
        assert export.status_code == 403
        client.cookies.clear()
        assert (await sign_in(client, "mkt@example.com")).status_code == 200
        page = await client.get("/console/segments")
        assert "members.csv" in page.text and 'id="save-segment"' in page.text
        assert (await client.get(f"/v1/segments/{saved.json()['id']}/members.csv")).status_code == 200

    async def test_products_batches_shipments_and_the_portal(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=5, activation="on_shipment")
        east = await client.post(
            "/v1/distributors",
            json={"name": "East", "regions": ["CN-ZJ"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        client.cookies.clear()
        await user(client, db, tenant_a, "ops@example.com", "operations")
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "dist@example.com", "distributor", distributor_id=east.json()["id"])
        signed_in = await sign_in(client, "ops@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        products_page = await client.get("/console/products")
        assert products_page.status_code == 200, products_page.text
        assert "Demo Lager 500ml" in products_page.text and "data-export-csv>" in products_page.text
        assert 'id="new-batch"' in products_page.text and "/void" not in products_page.text.split("<main>")[1]
        assert 'id="pack"' in products_page.text
        packed = await client.post(
            "/v1/aggregations:pack",
            json={"batch_id": str(issued.batch.id), "items_per_case": 2, "gs1_company_prefix": "0614141"},
            headers=csrf,
        )
        assert packed.status_code == 201, packed.text
        assert "<td>3</td>" in (await client.get("/console/products")).text  # 5 items, 2 a case: 3 cases
        shipments_page = await client.get("/console/shipments")
        assert shipments_page.status_code == 200 and 'id="ship"' in shipments_page.text
        assert f'value="{issued.batch.id}"' in shipments_page.text
        # What the ship form sends ("items.0.batch_id" and friends nest into one range).
        shipped = await client.post(
            "/v1/shipments",
            json={
                "distributor_id": east.json()["id"],
                "items": [{"batch_id": str(issued.batch.id), "start": 0, "stop": 5}],
                "reference": "DN-1",
            },
            headers=csrf,
        )
        assert shipped.status_code == 201, shipped.text
        west = await client.post(
            "/v1/distributors",
            json={"name": "West", "regions": ["CN-SC"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        other = await issue_batch(
            db, settings, tenant_a.brand_id, quantity=2, activation="on_shipment", gtin="09506000134369"
        )
        to_west = await client.post(
            "/v1/shipments",
            json={
                "distributor_id": west.json()["id"],
                "items": [{"batch_id": str(other.batch.id), "start": 0, "stop": 2}],
                "reference": "DN-WEST",
            },
            headers=csrf,
        )
        assert to_west.status_code == 201, to_west.text
        listed = await client.get("/console/shipments")
        assert "DN-1" in listed.text and "East" in listed.text
        assert "5 / 5" not in listed.text and ">5<" in (await client.get("/console/products")).text

        client.cookies.clear()
        assert (await sign_in(client, "cs@example.com")).status_code == 200
        read_only = await client.get("/console/products")
        assert read_only.status_code == 200 and "data-export-csv>" not in read_only.text
        assert 'id="new-batch"' not in read_only.text and 'id="new-product"' not in read_only.text
        assert 'id="ship"' not in (await client.get("/console/shipments")).text

        client.cookies.clear()
        assert (await sign_in(client, "dist@example.com")).status_code == 200
        portal = await client.get("/console/portal?since=2026-01-01&until=2026-01-31&region=cn-zj")
        assert "DN-WEST" not in portal.text  # another distributor's shipment stays out of this portal
        assert portal.status_code == 200, portal.text
        assert "DN-1" in portal.text and "/receive" in portal.text
        assert "since=2026-01-01T00%3A00%3A00%2B08%3A00" in portal.text and "region=CN-ZJ" in portal.text
        assert (await client.get("/console/products")).status_code == 403
        assert (await client.get("/console/shipments")).status_code == 403
        reversed_days = await client.get("/console/portal?since=2026-02-01&until=2026-01-01")
        assert reversed_days.status_code == 200 and 'id="range-error"' in reversed_days.text
        assert "DN-1" in reversed_days.text  # the shipments still show

    async def test_antifraud_code_and_audit_pages(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        await set_rules(client, tenant_a, devices=2)
        for where in PROVINCES[:3]:  # three devices in three provinces: over the two-device rule
            await clone_scan(client, issued.urls[0], where)
        client.cookies.clear()
        await user(client, db, tenant_a, "ops@example.com", "operations")
        await user(client, db, tenant_a, "audit@example.com", "auditor")
        signed_in = await sign_in(client, "ops@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        page = await client.get("/console/antifraud")
        assert page.status_code == 200, page.text
        serial = issued.urls[0].rsplit("/", 1)[1]
        assert f'href="/console/codes/{serial}"' in page.text  # the flag names the code by its serial
        assert "设备过多" in page.text and 'data-body=\'{"status": "confirmed"}\'' in page.text
        code = await client.get(f"/console/codes/{serial}")
        assert code.status_code == 200, code.text
        assert code.text.count("<circle") == 3 and "<polyline" in code.text  # three located scans
        assert (await client.get("/console/codes/AAAAAAAAAAAAAAAAAAAA")).status_code == 404
        blocked = await client.post(
            "/v1/antifraud/blocks",
            json={"kind": "ip", "value": "203.0.113.0/24", "reason": "bot farm"},
            headers=csrf,
        )
        assert blocked.status_code == 201, blocked.text
        assert "203.0.113.0/24" in (await client.get("/console/antifraud")).text
        assert (await client.get("/console/audit")).status_code == 403  # operations: not the audit log

        client.cookies.clear()
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        read_only = await client.get("/console/antifraud")
        assert "data-call=" not in read_only.text.split("<main>")[1]  # auditors look, never act
        audit = await client.get("/console/audit?action=antifraud.&actor=ops@example.com")
        assert audit.status_code == 200, audit.text
        assert "antifraud.block" in audit.text and "ops@example.com" in audit.text
        assert "clone_rules" not in audit.text  # the rules were set with a token, not by this actor
        # Times in China's time, as the day filters read them (they showed UTC: 8 hours early).
        cur = await db.execute(
            "SELECT at FROM audit_log WHERE brand_id = %s AND action = 'antifraud.block'",
            (tenant_a.brand_id,),
        )
        (blocked_at,) = await cur.fetchone()  # type: ignore[misc]
        shown = blocked_at.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        assert f"<td>{shown}</td>" in audit.text and "北京时间" in audit.text
        none = await client.get("/console/audit?since=2020-01-01&until=2020-01-02")
        assert "antifraud.block" not in none.text

    async def test_the_audit_page_links_older_entries_only_when_there_are_some(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """A page of exactly the last 100 entries has no "older" link (it led to an empty page); 101 do."""
        await user(client, db, tenant_a, "audit@example.com", "auditor")
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        cur = await db.execute("SELECT count(*) FROM audit_log WHERE brand_id = %s", (tenant_a.brand_id,))
        row = await cur.fetchone()
        assert row is not None

        async def entry(n: int) -> None:
            await audit.record(
                db, actor="test", brand_id=tenant_a.brand_id, action="test", object_type="t", object_id=n
            )

        for n in range(LISTED - row[0]):
            await entry(n)
        assert 'id="older"' not in (await client.get("/console/audit")).text
        await entry(LISTED)
        assert 'id="older"' in (await client.get("/console/audit")).text

    async def test_links_account_and_settings_pages(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        client.cookies.clear()
        invited = await client.post(
            "/v1/users/invitations",
            json={"email": "new@example.com", "role": "marketer"},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        assert invited.status_code == 201
        # The link in the mail opens a page (it used to be a 404) that posts to the API with its token.
        cur = await db.execute("SELECT body FROM notification_outbox ORDER BY id DESC LIMIT 1")
        link = (await cur.fetchone() or [""])[0].rsplit(" ", 1)[1]
        path = "/" + link.split("/", 3)[3]
        page = await client.get(path)
        assert page.status_code == 200 and "/console/invitations/accept" in page.text
        assert await last_mail(db, "new@example.com") in page.text
        await user(client, db, tenant_a, "admin@example.com", "brand_admin")
        await user(client, db, tenant_a, "audit@example.com", "auditor")
        reset = await client.post("/console/password-resets", json={"email": "audit@example.com"})
        assert reset.status_code == 202
        reset_page = await client.get(f"/console/password-resets/{await last_mail(db, 'audit@example.com')}")
        assert reset_page.status_code == 200 and "/console/password-resets/confirm" in reset_page.text
        assert (await client.get("/console/password-resets/short")).status_code in {400, 422}

        signed_in = await sign_in(client, "admin@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        account = await client.get("/console/account")
        assert account.status_code == 200 and 'id="totp-start"' in account.text
        setup = await client.post("/console/totp/setup", headers=csrf)
        assert setup.json()["qr_svg"].startswith("data:image/svg+xml")
        settings_page = await client.get("/console/settings")
        assert settings_page.status_code == 200, settings_page.text
        assert "audit@example.com" in settings_page.text and 'id="invite"' in settings_page.text
        assert "keys:rotate" in settings_page.text and 'data-api="POST /v1/webhooks"' in settings_page.text
        renamed = await client.patch(
            f"/v1/brands/{tenant_a.brand_id}", json={"name": "青岛啤酒"}, headers=csrf
        )
        assert renamed.status_code == 200 and renamed.json()["name"] == "青岛啤酒"
        assert "青岛啤酒" in (await client.get("/console/settings")).text

        # Disabling ends someone's sessions and sign-ins; not one's own account, nor another brand's.
        cur = await db.execute("SELECT id FROM console_users WHERE email = 'audit@example.com'")
        auditor_id = (await cur.fetchone() or [None])[0]
        cur = await db.execute("SELECT id FROM console_users WHERE email = 'admin@example.com'")
        admin_id = (await cur.fetchone() or [None])[0]
        assert (await client.post(f"/v1/users/{admin_id}:disable", headers=csrf)).status_code == 409
        assert (
            await client.post(f"/v1/users/{auditor_id}:disable", headers=tenant_b.headers(Role.BRAND_ADMIN))
        ).status_code == 404
        client.cookies.clear()
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        auditors_view = (await client.get("/console/settings")).text  # read only, no webhook URLs
        assert 'id="invite"' not in auditors_view and 'id="webhooks"' not in auditors_view
        admin = tenant_a.headers(Role.BRAND_ADMIN)  # a token rides over the auditor's cookie
        disabled = await client.post(f"/v1/users/{auditor_id}:disable", headers=admin)
        assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
        assert (await client.get("/console/settings")).status_code == 401
        assert (await sign_in(client, "audit@example.com")).status_code == 401
        enabled = await client.post(f"/v1/users/{auditor_id}:enable", headers=admin)
        assert enabled.json()["disabled_at"] is None
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        assert (await client.post(f"/v1/users/{auditor_id}:wipe", headers=admin)).status_code == 404
        cur = await db.execute("SELECT action FROM audit_log WHERE action LIKE 'console.user_%able'")
        assert [r[0] for r in await cur.fetchall()] == ["console.user_disable", "console.user_enable"]

    async def test_settings_lists_pending_invitations_and_revokes_one(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """People and roles shows the invitations still open (who sent each, by name) with a revoke
        button calling the API; revoked, the row is gone; an auditor reads the list without buttons."""
        client.cookies.clear()
        await user(client, db, tenant_a, "admin@example.com", "brand_admin")
        await user(client, db, tenant_a, "audit@example.com", "auditor")
        east = await client.post(
            "/v1/distributors",
            json={"name": "East Trading", "regions": ["CN-ZJ"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        signed_in = await sign_in(client, "admin@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        wrong = await client.post(
            "/v1/users/invitations", json={"email": "wrong@example.com", "role": "marketer"}, headers=csrf
        )
        assert wrong.status_code == 201, wrong.text
        agent = {"email": "agent@example.com", "role": "distributor", "distributor_id": east.json()["id"]}
        assert (await client.post("/v1/users/invitations", json=agent, headers=csrf)).status_code == 201

        page = await client.get("/console/settings")
        assert page.status_code == 200, page.text
        assert "待接受的邀请" in page.text and 'id="invitations"' in page.text
        rows = page.text.split('id="invitations"', 1)[1].split("</table>", 1)[0]
        assert "wrong@example.com" in rows and "营销" in rows
        assert "agent@example.com" in rows and "经销商 · East Trading" in rows
        assert "admin@example.com" in rows  # who sent them, by email
        assert "audit@example.com" not in rows  # accepted: an account now, not an invitation
        revoke = f'data-call="DELETE /v1/users/invitations/{wrong.json()["id"]}"'
        assert revoke in rows
        english = await client.get("/console/settings", headers={"Accept-Language": "en"})
        assert "Pending invitations" in english.text and "Invited by" in english.text

        # The button's call, as the page makes it: the session's cookie and CSRF token.
        revoked = await client.delete(f"/v1/users/invitations/{wrong.json()['id']}", headers=csrf)
        assert revoked.status_code == 204, revoked.text
        rows = (await client.get("/console/settings")).text.split('id="invitations"', 1)[1]
        rows = rows.split("</table>", 1)[0]
        assert "wrong@example.com" not in rows and "agent@example.com" in rows

        client.cookies.clear()
        assert (await sign_in(client, "audit@example.com")).status_code == 200
        auditors_view = (await client.get("/console/settings")).text
        assert "agent@example.com" in auditors_view and "DELETE /v1/users/invitations/" not in auditors_view

    async def test_member_work_approvals_kpis_and_the_dashboard_heat(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        member_id = await enrolled_member(client, db, issued.urls[0], "device-console-w")
        tagged = await client.post("/v1/tags", json={"name": "VIP"}, headers=tenant_a.headers(Role.MARKETER))
        assert tagged.status_code == 201, tagged.text
        client.cookies.clear()
        await user(client, db, tenant_a, "cs@example.com", "customer_service")
        await user(client, db, tenant_a, "fin@example.com", "finance")
        signed_in = await sign_in(client, "cs@example.com")
        csrf = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        page = await client.get(f"/console/members/{member_id}")
        assert 'id="adjust"' in page.text and 'id="add-tag"' in page.text and 'id="note-form"' in page.text
        assert "<option>VIP</option>" in page.text
        assert (await client.put(f"/v1/members/{member_id}/tags/VIP", headers=csrf)).status_code == 200
        page = await client.get(f"/console/members/{member_id}")
        assert "/tags/VIP" in page.text and "<option>VIP</option>" not in page.text  # tagged: removable
        # Above the threshold (1,000 by default) the page's adjustment waits for finance.
        adjusted = await client.post(
            f"/v1/members/{member_id}/points/adjustments",
            json={"amount": 5000, "reason": "lost parcel"},
            headers=csrf,
        )
        assert adjusted.status_code == 202, adjusted.text
        assert (await client.get("/console/approvals")).status_code == 403  # customer service: not here
        assert 'id="scan-regions"' in (await client.get("/console/dashboard")).text
        assert 'id="diversion' not in (await client.get("/console/dashboard")).text  # no report role

        client.cookies.clear()
        assert (await sign_in(client, "fin@example.com")).status_code == 200
        approvals = await client.get("/console/approvals")
        assert approvals.status_code == 200 and "lost parcel" in approvals.text and "+5,000" in approvals.text
        assert "/approve" in approvals.text
        # A rejection is a form: the reason typed beside the button goes with it.
        assert 'data-api="POST /v1/points-adjustments/' in approvals.text
        assert 'name="reason"' in approvals.text
        member = await client.get(f"/console/members/{member_id}")
        assert 'id="adjust"' in member.text and 'id="note-form"' not in member.text  # finance: no notes
        kpis_page = await client.get("/console/kpis?since=2026-01-01&until=2026-12-31")
        assert kpis_page.status_code == 200, kpis_page.text
        assert 'id="kpi-mau"' in kpis_page.text
        reversed_days = await client.get("/console/kpis?since=2026-02-01&until=2026-01-01")
        assert reversed_days.status_code == 200 and 'id="range-error"' in reversed_days.text
        assert 'id="kpi-mau"' not in reversed_days.text
        assert (await client.get("/console/kpis?until=9999-12-31")).status_code == 422

    async def test_out_of_range_filters_are_client_errors(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        client.cookies.clear()
        await user(client, db, tenant_a, "admin@example.com", "brand_admin")
        assert (await sign_in(client, "admin@example.com")).status_code == 200
        for bad in (
            "/console/audit?until=9999-12-31",
            "/console/audit?since=0001-01-01",
            "/console/audit?before=99999999999999999999",
            "/console/kpis?until=9999-12-31",
        ):
            assert (await client.get(bad)).status_code in {400, 422}, bad
