"""Tenant isolation: a token of brand A gets 403/404 on every object of brand B, on every admin route."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import auth
from service.models import Role, TokenIn
from tests.conftest import Tenant

# Public routes take no token by design; everything else must be tenant-checked.
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}

# A valid body per write route, so the check reaches the tenant decision instead of stopping at validation.
# A new write route without an entry here fails the test: add one.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/brands"): {"slug": "sneaky", "name": "Sneaky"},
    ("POST", "/v1/tokens"): {"role": "marketer", "name": "sneaky"},
    ("POST", "/v1/tokens/{token_id:uuid}/revoke"): None,
}


async def objects_of(db: psycopg.AsyncConnection[Any], tenant: Tenant) -> dict[str, str]:
    """One id per path parameter name, all belonging to `tenant`."""
    token = await auth.create_token(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=TokenIn(role=Role.MARKETER, name="victim"),
        default_ttl_days=1,
    )
    return {"brand_id": str(tenant.brand_id), "token_id": str(token.token.id)}


class TestTenancy:
    async def test_brand_a_cannot_reach_any_object_of_brand_b(
        self,
        app: Litestar,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """Every admin route, every role of A, every object id of B: 403 or 404, nothing changes for B."""
        ids = await objects_of(db, tenant_b)
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
                if SAMPLE_BODIES.get(key) is not None:
                    kwargs["json"] = SAMPLE_BODIES[key]
                response = await client.request(method, path, **kwargs)
                if "{" in template:
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
