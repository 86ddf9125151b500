"""Tenant isolation: a token of brand A gets 403/404 on every object of brand B, on every admin route."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import psycopg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from antifraud import shipments
from campaigns import campaigns, coupons, draws
from codegen import aggregation, batches, products
from codegen.models import BatchIn, ItemRange, ProductIn, RegularPackingIn
from codegen.printing import load_printing
from service import auth
from service.models import Role, TokenIn
from service.settings import Settings
from tests.conftest import Tenant

# Public routes take no token by design (consumers, probes, published public keys); the rest is checked.
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/scans",
    "/v1/members/otp",
    "/v1/members/enroll",
    "/v1/members/me",
    "/v1/brands/{brand_id:uuid}/public-keys",
    # The consumer page behind every printed code URL (GS1 Digital Link and the short brand form).
    "/01/{rest:path}",
    "/C/{rest:path}",
    "/c/{rest:path}",
    # The page behind a case's or pallet's label: says it is a shipping label, reads nothing.
    "/00/{rest:path}",
    # Member-token routes: own prizes only (tested across members in tests/campaigns/test_scan_rewards.py).
    "/v1/members/me/prizes/{campaign_id:uuid}/{scan_id:uuid}/claim",
    # The member's own data (PIPL access and erasure), by member token (tested in tests/members).
    "/v1/members/me/export",
    # The member's own consents, by member token (tested in tests/members/test_consents.py).
    "/v1/members/me/consents",
    # Console sign-in and the links mailed to people (tested in tests/api/test_console_auth.py).
    "/console/login",
    "/console/invitations/accept",
    "/console/password-resets",
    "/console/password-resets/confirm",
    # The pages behind those mailed links: a password form that posts its token to the routes above.
    "/console/invitations/{token:str}",
    "/console/password-resets/{token:str}",
}

# A valid body per write route, so the check reaches the tenant decision instead of stopping at validation.
# A new write route without an entry here fails the test: add one.
# "{x}" in a value is replaced by brand B's object of that kind: such writes must fail with 403/404.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/brands"): {"slug": "sneaky", "name": "Sneaky"},
    ("POST", "/v1/tokens"): {"role": "marketer", "name": "sneaky"},
    ("POST", "/v1/brands/{brand_id:uuid}/tokens"): {"role": "brand_admin", "name": "sneaky"},
    ("POST", "/v1/tokens/{token_id:uuid}/revoke"): None,
    ("POST", "/v1/products"): {"name": "Sneaky product"},
    ("PATCH", "/v1/products/{product_id:uuid}"): {"name": "renamed"},
    ("POST", "/v1/brands/{brand_id:uuid}/keys:rotate"): None,
    ("POST", "/v1/batches"): {"product_id": "{product_id}", "quantity": 10},
    ("POST", "/v1/batches/{batch_id:uuid}/void"): None,
    ("POST", "/v1/aggregations"): {
        "level": "case",
        "sscc": "106141411234567897",
        "items": [{"batch_id": "{batch_id}", "start": 0, "stop": 2}],
    },
    ("POST", "/v1/aggregations:pack"): {
        "batch_id": "{batch_id}",
        "items_per_case": 5,
        "gs1_company_prefix": "0614141",
    },
    ("POST", "/v1/campaigns"): {
        "name": "Sneaky campaign",
        "kind": "points",
        "starts_at": "2030-01-01T00:00:00Z",
        "ends_at": "2030-02-01T00:00:00Z",
        "budget_cents": 100,
        "points_reward": {"points": 10},
    },
    ("POST", "/v1/campaigns:validate"): {
        "name": "Sneaky check",
        "kind": "points",
        "starts_at": "2030-01-01T00:00:00Z",
        "ends_at": "2030-02-01T00:00:00Z",
        "budget_cents": 100,
        "points_reward": {"points": 10},
    },
    ("PATCH", "/v1/campaigns/{campaign_id:uuid}"): {"name": "renamed", "live_change": True},
    ("POST", "/v1/users/{user_action:str}"): None,
    ("PATCH", "/v1/brands/{brand_id:uuid}"): {"name": "Renamed by someone else"},
    ("PUT", "/v1/brands/{brand_id:uuid}/gs1-company-prefixes"): {"prefixes": ["6901"]},
    ("POST", "/v1/campaigns/{campaign_action:str}"): None,
    ("POST", "/v1/campaigns/{campaign_id:uuid}/prizes/{prize_action:str}"): {"add": 5},
    ("POST", "/v1/campaigns/{campaign_id:uuid}/prize-claims/{scan_id:uuid}/ship"): {
        "carrier": "Sneaky Express",
        "tracking_number": "SNEAKY123",
    },
    ("PUT", "/v1/campaigns/{campaign_id:uuid}/prize-claims/{scan_id:uuid}/shipment"): {
        "carrier": "Sneaky Express",
        "tracking_number": "SNEAKY123",
    },
    ("POST", "/v1/coupon-templates"): {
        "name": "Sneaky coupon",
        "discount_kind": "amount",
        "amount_off_cents": 100,
        "valid_days": 1,
    },
    ("POST", "/v1/coupons/{code:str}/redeem"): {"order_ref": "sneaky", "spend_cents": 10_000},
    ("POST", "/v1/members/{member_id:uuid}/points/adjustments"): {"amount": 500, "reason": "sneaky"},
    ("PATCH", "/v1/members/{member_id:uuid}"): {"name": "Sneaky"},
    ("POST", "/v1/members:search"): {"phone": "13800138000"},
    ("POST", "/v1/member-imports"): None,
    ("POST", "/console/logout"): None,
    ("POST", "/console/totp/setup"): None,
    ("POST", "/console/totp/confirm"): {"code": "123456"},
    ("POST", "/v1/users/invitations"): {"email": "sneaky@example.com", "role": "marketer"},
    ("POST", "/v1/members/{member_id:uuid}/notes"): {"body": "sneaky"},
    ("PUT", "/v1/members/{member_id:uuid}/tags/{tag_name:str}"): None,
    ("POST", "/v1/members/{member_id:uuid}/merge"): {"into": "{member_id}", "reason": "sneaky"},
    ("POST", "/v1/points-adjustments/{request_id:int}/{decision:str}"): None,
    ("POST", "/v1/member-attributes"): {"name": "sneaky", "type": "text"},
    ("POST", "/v1/tags"): {"name": "sneaky"},
    ("PUT", "/v1/member-tiers"): {"tiers": [{"name": "Base"}]},
    ("PUT", "/v1/member-settings"): {},
    ("PATCH", "/v1/member-settings"): {"new_days": 7},
    ("POST", "/v1/segments"): {"name": "sneaky", "filter": {}},
    ("PUT", "/v1/segments/{segment_id:uuid}"): {"name": "renamed", "filter": {}},
    ("POST", "/v1/segments:count"): {},
    ("POST", "/v1/distributors"): {"name": "Sneaky distributor", "regions": ["CN-ZJ"]},
    ("PUT", "/v1/distributors/{distributor_id:uuid}/regions"): {"regions": ["CN"]},
    ("POST", "/v1/shipments"): {
        "distributor_id": "{distributor_id}",
        "items": [{"batch_id": "{batch_id}", "start": 0, "stop": 5}],
    },
    ("POST", "/v1/shipments/{shipment_id:uuid}/receive"): None,
    ("PUT", "/v1/antifraud/clone-rules"): {"devices": 5},
    ("PATCH", "/v1/antifraud/clone-rules"): {"devices": 5},
    ("POST", "/v1/antifraud/flagged/{flag_id:int}/review"): {"status": "cleared"},
    ("POST", "/v1/antifraud/blocks"): {"kind": "device", "value": "dev-sneaky-1", "reason": "sneaky"},
    ("POST", "/v1/antifraud/blocks/{block_id:int}/lift"): None,
    ("POST", "/v1/webhooks"): {"url": "https://hooks.example.com/sneaky"},
    ("POST", "/v1/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:int}/retry"): None,
    ("PUT", "/v1/member-event-settings"): {},
    ("PATCH", "/v1/member-event-settings"): {"expiry_notice_days": 7},
}


async def objects_of(db: psycopg.AsyncConnection[Any], tenant: Tenant, master_key: bytes) -> dict[str, str]:
    """One id per path parameter name, all belonging to `tenant`."""
    token = await auth.create_token(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=TokenIn(role=Role.MARKETER, name="victim"),
        default_ttl_days=1,
    )
    product = await products.create_product(
        db, actor="test", brand_id=tenant.brand_id, data=ProductIn(name="Victim", gtin="09506000134352")
    )
    batch = await batches.create_batch(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=BatchIn(product_id=product.id, quantity=100),
        master_key=master_key,
    )
    packed = await aggregation.pack_regularly(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=RegularPackingIn(batch_id=batch.id, items_per_case=50, gs1_company_prefix="0614141"),
    )
    now = dt.datetime.now(dt.UTC)
    campaign = await campaigns.create_campaign(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=campaigns.CampaignIn(
            name="Victim draw",
            kind="lucky_draw",
            starts_at=now - dt.timedelta(days=1),
            ends_at=now + dt.timedelta(days=30),
            budget_cents=10_000,
            prizes=[draws.PrizeIn(name="Mug", kind="physical", weight=1, stock=3, cost_cents=100)],
        ),
    )
    campaign_id = campaign.id
    await campaigns.transition(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        campaign_id=campaign_id,
        action="activate",
        master_keys=[master_key],
        now=now,
    )
    cur = await db.execute("SELECT id FROM prizes WHERE campaign_id = %s", (campaign_id,))
    prize = await cur.fetchone()
    assert prize is not None
    template = await coupons.create_template(
        db,
        brand_id=tenant.brand_id,
        data=coupons.CouponTemplateIn(
            name="Victim", discount_kind="amount", amount_off_cents=100, valid_days=9
        ),
    )
    distributor = await shipments.create_distributor(
        db, brand_id=tenant.brand_id, data=shipments.DistributorIn(name="Victim", regions=["CN-ZJ"])
    )
    shipment = await shipments.ship(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=shipments.ShipmentIn(
            distributor_id=distributor.id, items=[ItemRange(batch_id=batch.id, start=90, stop=100)]
        ),
        now=dt.datetime.now(dt.UTC),
    )
    printing = await load_printing(db, tenant.brand_id, batch.id, [master_key])
    [[(_, serial, _)]] = list(printing.codes("scan.example.com", 0, 1))
    cur = await db.execute(
        "INSERT INTO flagged_codes (brand_id, key_id, code_index, batch_id, score, reasons, suspect_scans,"
        " first_flagged_at, last_flagged_at) VALUES (%s, 0, %s, %s, 150, '{devices}', 1, now(), now())"
        " RETURNING id",
        (tenant.brand_id, batch.start_index, batch.id),
    )
    flag = await cur.fetchone()
    assert flag is not None
    cur = await db.execute(
        "INSERT INTO blocks (brand_id, kind, value, reason, created_by) VALUES (%s, 'device', 'dev-victim-1',"
        " 'victim', 'test') RETURNING id",
        (tenant.brand_id,),
    )
    blocked = await cur.fetchone()
    assert blocked is not None
    member_id = uuid.uuid4()
    await db.execute("INSERT INTO members (id, brand_id) VALUES (%s, %s)", (member_id, tenant.brand_id))
    await db.execute(
        "INSERT INTO tags (brand_id, name, kind) VALUES (%s, 'victim-tag', 'manual')", (tenant.brand_id,)
    )
    cur = await db.execute(
        "INSERT INTO segments (brand_id, name, filter, created_by) VALUES (%s, 'victims', '{}', 'test')"
        " RETURNING id",
        (tenant.brand_id,),
    )
    segment = await cur.fetchone()
    assert segment is not None
    cur = await db.execute(
        "INSERT INTO points_adjustment_requests (brand_id, member_id, amount, reason, requested_by)"
        " VALUES (%s, %s, 5000, 'victim', 'test') RETURNING id",
        (tenant.brand_id, member_id),
    )
    adjustment_request = await cur.fetchone()
    assert adjustment_request is not None
    cur = await db.execute(
        "INSERT INTO webhooks (brand_id, url, secret_sealed, created_by)"
        " VALUES (%s, 'https://hooks.example.invalid/victim', '\\x00', 'test') RETURNING id",
        (tenant.brand_id,),
    )
    webhook = await cur.fetchone()
    assert webhook is not None
    cur = await db.execute(
        "WITH event AS (INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at,"
        " created_at, fanned_out_at) VALUES (gen_random_uuid(), %(brand)s, %(member)s, 'first_scan', '',"
        " now(), now(), now()) RETURNING id)"
        " INSERT INTO member_event_deliveries (brand_id, event_id, channel, webhook_id, status,"
        " next_attempt_at, give_up_at, created_at)"
        " SELECT %(brand)s, id, 'webhook', %(webhook)s, 'failed', now(), now(), now() FROM event"
        " RETURNING id",
        {"brand": tenant.brand_id, "member": member_id, "webhook": webhook[0]},
    )
    delivery = await cur.fetchone()
    assert delivery is not None
    cur = await db.execute(
        "INSERT INTO member_imports (brand_id, import_key, created_by) VALUES (%s, 'victim', 'test')"
        " RETURNING id",
        (tenant.brand_id,),
    )
    member_import = await cur.fetchone()
    assert member_import is not None
    cur = await db.execute(
        "INSERT INTO console_users (brand_id, email, role, password_hash)"
        " VALUES (%s, 'victim@example.com', 'marketer', 'not-a-hash') RETURNING id",
        (tenant.brand_id,),
    )
    console_user = await cur.fetchone()
    assert console_user is not None
    cur = await db.execute(
        "INSERT INTO console_invitations (token_hash, brand_id, email, role, invited_by, expires_at)"
        " VALUES (sha256('victim'), %s, 'invited.victim@example.com', 'marketer', 'test',"
        " now() + interval '1 day') RETURNING id",
        (tenant.brand_id,),
    )
    invitation = await cur.fetchone()
    assert invitation is not None
    code = coupons.new_code()
    await db.execute(
        "INSERT INTO coupons (brand_id, template_id, member_id, code_hash, code_sealed, valid_from,"
        " valid_until, usage_limit, issued_at)"
        " VALUES (%s, %s, %s, %s, '\\x00', now(), now() + interval '1 day', 1, now())",
        (tenant.brand_id, template.id, member_id, coupons.code_hash(code)),
    )
    return {
        "brand_id": str(tenant.brand_id),
        "campaign_id": str(campaign_id),
        # Lifecycle steps and top-ups are custom methods: `<id>:<action>` is one path segment.
        "campaign_action": f"{campaign_id}:pause",
        "prize_action": f"{prize[0]}:top-up",
        "token_id": str(token.token.id),
        "product_id": str(product.id),
        "batch_id": str(batch.id),
        "aggregation_id": str(packed[0].id),
        "position": "3",
        "template_id": str(template.id),
        "member_id": str(member_id),
        "code": coupons.display(code),
        "distributor_id": str(distributor.id),
        "shipment_id": str(shipment.id),
        "serial": serial,
        "flag_id": str(flag[0]),
        "block_id": str(blocked[0]),
        "tag_name": "victim-tag",
        "import_id": str(member_import[0]),
        "segment_id": str(segment[0]),
        "request_id": str(adjustment_request[0]),
        "decision": "approve",
        "webhook_id": str(webhook[0]),
        "delivery_id": str(delivery[0]),
        "user_action": f"{console_user[0]}:disable",
        "invitation_id": str(invitation[0]),
        "scan_id": str(await claimed_prize(db, tenant, campaign_id, member_id)),
    }


async def claimed_prize(
    db: psycopg.AsyncConnection[Any], tenant: Tenant, campaign_id: uuid.UUID, member_id: uuid.UUID
) -> uuid.UUID:
    """A prize of the tenant's draw, won and claimed: what another brand must neither read nor ship."""
    scan_id = uuid.uuid4()
    await db.execute(
        "WITH won AS (INSERT INTO draws (campaign_id, scan_id, member_id, prize_id, drawn_prize_id, slot,"
        " result, drawn_at) SELECT campaign_id, %(scan)s, %(member)s, id, id, 1, 'won', now() FROM prizes"
        " WHERE campaign_id = %(campaign)s RETURNING campaign_id, scan_id, member_id)"
        " INSERT INTO prize_claims (campaign_id, scan_id, brand_id, member_id, address_sealed, claimed_at)"
        " SELECT campaign_id, scan_id, %(brand)s, member_id, '\\x00', now() FROM won",
        {"scan": scan_id, "member": member_id, "campaign": campaign_id, "brand": tenant.brand_id},
    )
    return scan_id


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


class TestTenancy:
    async def test_brand_a_cannot_reach_any_object_of_brand_b(
        self,
        app: Litestar,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        settings: Settings,
    ) -> None:
        """Every admin route, every role of A, every object id of B: 403 or 404, nothing changes for B."""
        ids = await objects_of(db, tenant_b, settings.master_key)
        routes = [
            (m, p)
            for m, p in ((m, r.path) for r in app.routes for m in getattr(r, "methods", ()))
            if m not in {"HEAD", "OPTIONS"} and p not in PUBLIC_PATHS and not p.startswith("/schema")
        ]
        templates = {(m, p) for m, p in routes}
        checked = 0
        for method, template in sorted(templates):
            path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids[m.group(1)], template)
            if "{" not in template and method == "GET":
                continue  # collection reads are scoped, checked below
            key = (method, template)
            if method in {"POST", "PUT", "PATCH"}:
                assert key in SAMPLE_BODIES, f"add a sample body for {method} {template}"
            for role, secret in tenant_a.tokens.items():
                kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {secret}"}}
                body = SAMPLE_BODIES.get(key)
                names_b = body is not None and _fill(body, ids) != body
                if body is not None:
                    kwargs["json"] = _fill(body, ids)
                response = await client.request(method, path, **kwargs)
                if "{" in template or names_b:
                    assert response.status_code in {403, 404}, (method, path, role, response.text)
                else:
                    # Collection writes act on the caller's own brand, never on B.
                    assert response.status_code != 500, (method, path, role, response.text)
                checked += 1
        assert checked > 0
        # B's token still works: nothing A tried had an effect.
        response = await client.get(f"/v1/brands/{tenant_b.brand_id}", headers=tenant_b.headers())
        assert response.status_code == 200
        response = await client.get("/v1/tokens", headers=tenant_b.headers())
        assert ids["token_id"] in {t["id"] for t in response.json()["items"]}
        assert all(t["revoked_at"] is None for t in response.json()["items"])
        cur = await db.execute(
            "SELECT c.status, c.name, p.stock FROM campaigns c JOIN prizes p ON p.campaign_id = c.id"
            " WHERE c.id = %s",
            (ids["campaign_id"],),
        )
        assert await cur.fetchone() == ("active", "Victim draw", 3)
        cur = await db.execute(
            "SELECT status, shipped_at FROM prize_claims WHERE scan_id = %s", (ids["scan_id"],)
        )
        assert await cur.fetchone() == ("claimed", None)
        cur = await db.execute(
            "SELECT (SELECT sum(uses) FROM coupons),"
            " (SELECT count(*) FROM points_ledger WHERE member_id = %s)",
            (ids["member_id"],),
        )
        assert await cur.fetchone() == (0, 0)
        cur = await db.execute(
            "SELECT (SELECT count(*) FROM activations),"
            " (SELECT count(*) FROM shipments WHERE received_at IS NULL),"
            " (SELECT regions FROM distributors WHERE id = %s)",
            (ids["distributor_id"],),
        )
        assert await cur.fetchone() == (1, 1, ["CN-ZJ"])
        cur = await db.execute(
            "SELECT (SELECT count(*) FROM member_tags), (SELECT status FROM points_adjustment_requests),"
            " (SELECT name FROM segments WHERE id = %s), (SELECT merged_into FROM members WHERE id = %s)",
            (ids["segment_id"], ids["member_id"]),
        )
        assert await cur.fetchone() == (0, "pending", "victims", None)
        cur = await db.execute("SELECT status FROM flagged_codes")
        assert await cur.fetchall() == [("open",)]
        cur = await db.execute("SELECT lifted_at FROM blocks WHERE value = 'dev-victim-1'")
        assert await cur.fetchall() == [(None,)]
        cur = await db.execute(
            "SELECT w.active, d.status FROM webhooks w JOIN member_event_deliveries d ON d.webhook_id = w.id"
        )
        assert await cur.fetchall() == [(True, "failed")]
        cur = await db.execute("SELECT count(*) FROM brands WHERE name = 'Renamed by someone else'")
        assert await cur.fetchone() == (0,)
        cur = await db.execute("SELECT disabled_at FROM console_users WHERE email = 'victim@example.com'")
        assert await cur.fetchall() == [(None,)]
        cur = await db.execute(
            "SELECT revoked_at FROM console_invitations WHERE brand_id = %s", (tenant_b.brand_id,)
        )
        assert await cur.fetchall() == [(None,)]

    async def test_lists_only_show_the_callers_brand(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """Collection endpoints are scoped to the caller's brand."""
        brands = (await client.get("/v1/brands", headers=tenant_a.headers())).json()["items"]
        assert [b["id"] for b in brands] == [str(tenant_a.brand_id)]
        tokens = (await client.get("/v1/tokens", headers=tenant_a.headers())).json()["items"]
        assert tokens and all(t["brand_id"] == str(tenant_a.brand_id) for t in tokens)
        audit = (await client.get("/v1/audit", headers=tenant_a.headers(Role.AUDITOR))).json()["items"]
        assert audit and all(e["brand_id"] == str(tenant_a.brand_id) for e in audit)

    async def test_platform_admin_sees_every_brand(
        self, client: AsyncTestClient[Any], platform_token: str, tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """The platform role is the one role that crosses tenants."""
        response = await client.get("/v1/brands", headers={"Authorization": f"Bearer {platform_token}"})
        assert {b["id"] for b in response.json()["items"]} >= {str(tenant_a.brand_id), str(tenant_b.brand_id)}
