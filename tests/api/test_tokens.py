"""API tokens: shown once, stored hashed, role-checked, revocable, expiring, rate-limited."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import psycopg
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant


class TestTokens:
    async def test_created_token_works_and_is_stored_only_as_a_hash(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """The secret is in the create response only; the database holds its SHA-256."""
        response = await client.post(
            "/v1/tokens", json={"role": "marketer", "name": "campaign bot"}, headers=tenant_a.headers()
        )
        assert response.status_code == 201, response.text
        secret = response.json()["secret"]
        assert secret.startswith("oc_") and len(secret) > 40
        stored = await (
            await db.execute("SELECT token_hash FROM api_tokens WHERE name = 'campaign bot'")
        ).fetchone()
        assert stored is not None and bytes(stored[0]) == hashlib.sha256(secret.encode()).digest()
        dump = await (await db.execute("SELECT string_agg(t::text, '') FROM api_tokens t")).fetchone()
        assert dump is not None and secret not in dump[0]
        listed = (await client.get("/v1/tokens", headers=tenant_a.headers())).json()
        assert "secret" not in msgspec.json.encode(listed).decode()
        me = await client.get("/v1/brands", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200

    async def test_a_platform_admin_onboards_a_brand_with_its_first_token(
        self, client: AsyncTestClient[Any], platform_token: str, tenant_a: Tenant
    ) -> None:
        """POST /v1/brands/{id}/tokens: platform admins only, never a platform role, 404 for no brand."""
        platform = {"Authorization": f"Bearer {platform_token}"}
        brand = await client.post(
            "/v1/brands", json={"slug": "onboarded", "name": "Onboarded"}, headers=platform
        )
        brand_id = brand.json()["id"]
        issued = await client.post(
            f"/v1/brands/{brand_id}/tokens", json={"role": "brand_admin", "name": "first"}, headers=platform
        )
        assert issued.status_code == 201, issued.text
        mine = await client.get("/v1/brands", headers={"Authorization": f"Bearer {issued.json()['secret']}"})
        assert [b["slug"] for b in mine.json()["items"]] == ["onboarded"]
        body = {"role": "platform_admin", "name": "escalate"}
        assert_problem(
            await client.post(f"/v1/brands/{brand_id}/tokens", json=body, headers=platform), 403, "forbidden"
        )
        unknown = "00000000-0000-0000-0000-000000000001"
        body = {"role": "brand_admin", "name": "x"}
        assert_problem(
            await client.post(f"/v1/brands/{unknown}/tokens", json=body, headers=platform), 404, "not-found"
        )
        # A brand admin cannot mint tokens for a brand, its own or another's, through this door.
        own = await client.post(
            f"/v1/brands/{tenant_a.brand_id}/tokens", json=body, headers=tenant_a.headers()
        )
        assert own.status_code == 403

    async def test_revoked_token_stops_working_at_once(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Revocation is immediate and audited."""
        created = (
            await client.post(
                "/v1/tokens", json={"role": "auditor", "name": "temp"}, headers=tenant_a.headers()
            )
        ).json()
        headers = {"Authorization": f"Bearer {created['secret']}"}
        assert (await client.get("/v1/brands", headers=headers)).status_code == 200
        revoke = await client.post(f"/v1/tokens/{created['token']['id']}/revoke", headers=tenant_a.headers())
        assert revoke.status_code == 200 and revoke.json()["revoked_at"]
        assert_problem(await client.get("/v1/brands", headers=headers), 401, "unauthenticated")
        audit = (await client.get("/v1/audit?action=token.revoke", headers=tenant_a.headers())).json()[
            "items"
        ]
        assert [e["object_id"] for e in audit] == [created["token"]["id"]]

    async def test_expired_token_is_refused(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Tokens past expires_at are unknown to the guard."""
        await db.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE role = 'finance'"
        )
        assert_problem(
            await client.get("/v1/brands", headers=tenant_a.headers(Role.FINANCE)), 401, "unauthenticated"
        )

    async def test_roles_are_enforced(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """A marketer cannot mint tokens; a brand admin cannot mint platform tokens."""
        response = await client.post(
            "/v1/tokens", json={"role": "marketer", "name": "x"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert_problem(response, 403, "forbidden")
        response = await client.post(
            "/v1/tokens", json={"role": "platform_admin", "name": "x"}, headers=tenant_a.headers()
        )
        assert_problem(response, 403, "forbidden")
        response = await client.post(
            "/v1/brands", json={"slug": "x-y", "name": "X"}, headers=tenant_a.headers()
        )
        assert_problem(response, 403, "forbidden")

    async def test_distributor_tokens_need_a_distributor(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """The distributor role is always scoped to one distributor."""
        response = await client.post(
            "/v1/tokens", json={"role": "distributor", "name": "x"}, headers=tenant_a.headers()
        )
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["field"] == "distributor_id"

    async def test_admin_rate_limit_answers_429_with_retry_after(
        self, settings: Settings, tenant_a: Tenant
    ) -> None:
        """Past the per-token budget per minute, requests get 429 and Retry-After."""
        limited = msgspec.structs.replace(settings, admin_rate_per_minute=3)
        async with AsyncTestClient(app=create_app(limited)) as client:
            statuses = [
                (await client.get("/v1/brands", headers=tenant_a.headers())).status_code for _ in range(5)
            ]
            response = await client.get("/v1/brands", headers=tenant_a.headers())
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        assert_problem(response, 429, "rate-limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60


class TestBrands:
    async def test_platform_admin_creates_brands_and_duplicates_conflict(
        self, client: AsyncTestClient[Any], platform_token: str
    ) -> None:
        """Slugs are unique; a duplicate is a 409 naming the field."""
        headers = {"Authorization": f"Bearer {platform_token}"}
        created = await client.post("/v1/brands", json={"slug": "acme", "name": "Acme"}, headers=headers)
        assert created.status_code == 201, created.text
        assert len(created.json()["short_code"]) == 5
        again = await client.post("/v1/brands", json={"slug": "acme", "name": "Acme 2"}, headers=headers)
        problem = assert_problem(again, 409, "conflict")
        assert problem["errors"][0]["field"] == "slug"

    async def test_pagination_is_bounded_and_keyset(
        self, client: AsyncTestClient[Any], platform_token: str
    ) -> None:
        """`limit` is validated and `next_cursor` walks every brand exactly once, with no empty last page."""
        headers = {"Authorization": f"Bearer {platform_token}"}
        for n in range(5):
            await client.post("/v1/brands", json={"slug": f"b-{n}", "name": f"B{n}"}, headers=headers)
        assert_problem(await client.get("/v1/brands?limit=0", headers=headers), 422, "validation-error")
        assert_problem(await client.get("/v1/brands?limit=100000", headers=headers), 422, "validation-error")
        seen: list[str] = []
        pages = 0
        cursor = None
        while True:
            query = "/v1/brands?limit=2" + (f"&after={cursor}" if cursor else "")
            page = (await client.get(query, headers=headers)).json()
            pages += 1
            seen += [b["id"] for b in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5
        assert pages == 3
        whole = (await client.get("/v1/brands?limit=5", headers=headers)).json()
        assert len(whole["items"]) == 5 and whole["next_cursor"] is None
