"""Every list of the API is keyset-paginated the same way; an empty query value is refused by its field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from service.models import Role
from tests.api.test_errors import assert_problem

if TYPE_CHECKING:
    from litestar.testing import AsyncTestClient

    from tests.conftest import Tenant

MADE = 5


async def _tags(client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant) -> None:
    for n in range(MADE):
        created = await client.post("/v1/tags", json={"name": f"tag {n}"}, headers=tenant.headers())
        assert created.status_code == 201, created.text


async def _segments(client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant) -> None:
    for n in range(MADE):
        body = {"name": f"segment {n}", "filter": {}}
        created = await client.post("/v1/segments", json=body, headers=tenant.headers())
        assert created.status_code == 201, created.text


async def _webhooks(client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant) -> None:
    for n in range(MADE):
        body = {"url": f"https://crm.example.com/{n}"}
        created = await client.post("/v1/webhooks", json=body, headers=tenant.headers())
        assert created.status_code == 201, created.text


async def _users(client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant) -> None:
    for n in range(MADE):
        await db.execute(
            "INSERT INTO console_users (brand_id, email, role, password_hash)"
            " VALUES (%s, %s, 'auditor', 'not a hash')",
            (tenant.brand_id, f"person{n}.{tenant.slug}@example.com"),
        )


# (path, how to make MADE items of it in a brand, the item field the list is ordered and keyed by)
LISTS: list[tuple[str, Any, str]] = [
    ("/v1/tags", _tags, "name"),
    ("/v1/segments", _segments, "name"),
    ("/v1/webhooks", _webhooks, "created_at"),
    ("/v1/users", _users, "email"),
]


async def walk(client: AsyncTestClient[Any], path: str, headers: dict[str, str], limit: int) -> list[Any]:
    """Every page of the list, asserting that none is empty and only the last has no cursor."""
    pages: list[list[Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert body["items"], "never an empty page"
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return [item for page in pages for item in page]
        assert len(body["items"]) == limit
        params["after"] = body["next_cursor"]


@pytest.mark.parametrize(("path", "make", "key"), LISTS, ids=[p for p, _, _ in LISTS])
class TestKeysetPages:
    """Tags, segments, webhooks and console users page like every other list: `limit` and `after`."""

    async def test_pages_walk_every_item_once_in_order(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        path: str,
        make: Any,
        key: str,
    ) -> None:
        """`next_cursor` as `after` walks the brand's items exactly once, in the list's order, with no empty
        last page; another brand's items never show."""
        await make(client, db, tenant_a)
        await make(client, db, tenant_b)
        headers = tenant_a.headers()
        whole = (await client.get(path, headers=headers)).json()
        assert len(whole["items"]) == MADE and whole["next_cursor"] is None
        walked = await walk(client, path, headers, limit=2)
        assert walked == whole["items"]
        assert [item[key] for item in walked] == sorted(item[key] for item in walked)
        assert len(await walk(client, path, headers, limit=MADE)) == MADE

    async def test_a_bad_limit_is_422(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        path: str,
        make: Any,
        key: str,
    ) -> None:
        """`limit` must be a whole number from 1 to 1000, as on every other list."""
        for limit in ("abc", "-1", "0", "1.5", "100000"):
            response = await client.get(path, params={"limit": limit}, headers=tenant_a.headers())
            problem = assert_problem(response, 422, "validation-error")
            assert [e["field"] for e in problem["errors"]] == ["limit"], limit


class TestCursors:
    """A cursor still places the next page when the item it names is gone."""

    async def test_a_deleted_tag_still_places_the_next_page(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        await _tags(client, db, tenant_a)
        headers = tenant_a.headers()
        first = (await client.get("/v1/tags", params={"limit": 2}, headers=headers)).json()
        assert first["next_cursor"] == "tag 1"
        assert (await client.delete("/v1/tags/tag 1", headers=headers)).status_code == 204
        rest = (await client.get("/v1/tags", params={"after": "tag 1"}, headers=headers)).json()
        assert [t["name"] for t in rest["items"]] == ["tag 2", "tag 3", "tag 4"]

    async def test_a_deleted_webhook_still_places_the_next_page(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        await _webhooks(client, db, tenant_a)
        headers = tenant_a.headers()
        first = (await client.get("/v1/webhooks", params={"limit": 2}, headers=headers)).json()
        cursor = first["next_cursor"]
        assert cursor == first["items"][-1]["id"]
        assert (await client.delete(f"/v1/webhooks/{cursor}", headers=headers)).status_code == 204
        rest = (await client.get("/v1/webhooks", params={"after": cursor}, headers=headers)).json()
        assert [w["url"] for w in rest["items"]] == [f"https://crm.example.com/{n}" for n in (2, 3, 4)]

    async def test_another_brands_webhook_is_no_cursor(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """A cursor naming another brand's webhook shows nothing of either brand."""
        await _webhooks(client, db, tenant_b)
        theirs = (await client.get("/v1/webhooks", headers=tenant_b.headers())).json()["items"][0]["id"]
        await _webhooks(client, db, tenant_a)
        mine = await client.get("/v1/webhooks", params={"after": theirs}, headers=tenant_a.headers())
        assert mine.json() == {"items": [], "next_cursor": None}

    async def test_a_cursor_longer_than_any_name_is_422(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        response = await client.get(
            "/v1/tags", params={"after": "x" * 41}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert_problem(response, 422, "validation-error")


class TestEmptyQueryValues:
    """An empty value is a value: `?limit=` is refused like `?limit=abc`, and `?dry_run=` never turns a dry
    run into a real import by reading as "not given"."""

    async def test_empty_values_are_refused_by_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        response = await client.get("/v1/campaigns?status=active&limit=&after=", headers=tenant_a.headers())
        fields = {e["field"] for e in assert_problem(response, 422, "validation-error")["errors"]}
        assert fields == {"limit", "after"}
        dry_run = await client.post(
            "/v1/member-imports?dry_run=",
            content=b"phone\n13800138000\n",
            headers={**tenant_a.headers(), "content-type": "text/csv"},
        )
        assert [e["field"] for e in assert_problem(dry_run, 422, "validation-error")["errors"]] == ["dry_run"]
