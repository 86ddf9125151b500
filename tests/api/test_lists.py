"""Every list of the API is keyset-paginated the same way, and empty query values count as not given."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from service.middleware import without_empty_values
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
    """`?limit=&after=` (a URL template filled in part) is a request without them, on every route."""

    async def test_empty_values_are_not_given(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """What answered 422 ("after: Invalid UUID", "limit: Expected int") lists the first page."""
        await client.post("/v1/tags", json={"name": "VIP"}, headers=tenant_a.headers())
        for path in (
            "/v1/campaigns?status=active&limit=&after=",
            "/v1/campaigns?status=&limit=&after=",
            "/v1/tags?limit=&after=",
            "/v1/audit?action=&object_type=&after=&limit=",
            "/v1/member-events?type=&member_id=&limit=&after=",
        ):
            response = await client.get(path, headers=tenant_a.headers())
            assert response.status_code == 200, (path, response.text)
            assert response.json()["next_cursor"] is None
        tags = (await client.get("/v1/tags?limit=&after=", headers=tenant_a.headers())).json()
        assert [t["name"] for t in tags["items"]] == ["VIP"]

    async def test_an_empty_filter_filters_nothing(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """`?action=` lists every entry (it matched none before): the filter was not given."""
        await client.post("/v1/tags", json={"name": "VIP"}, headers=tenant_a.headers())
        auditor = tenant_a.headers(Role.AUDITOR)
        every = (await client.get("/v1/audit", headers=auditor)).json()["items"]
        assert every
        assert (await client.get("/v1/audit?action=", headers=auditor)).json()["items"] == every

    async def test_a_bare_name_is_still_refused(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """`?limit` without `=` reads as a flag, not as a blank: refused as before (so `?dry_run` on an
        import never becomes a real import)."""
        response = await client.get("/v1/tags?limit", headers=tenant_a.headers())
        assert_problem(response, 422, "validation-error")

    async def test_values_still_count(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """A non-empty value is unchanged, `=` inside it too."""
        response = await client.get("/v1/tags?limit=abc&after=", headers=tenant_a.headers())
        assert [e["field"] for e in assert_problem(response, 422, "validation-error")["errors"]] == ["limit"]

    @pytest.mark.parametrize(
        ("query", "kept"),
        [
            (b"", b""),
            (b"status=active", b"status=active"),
            (b"status=active&limit=&after=", b"status=active"),
            (b"limit=&after=", b""),
            (b"token=abc=&limit=", b"token=abc="),
            (b"a=b%3D&x=", b"a=b%3D"),
            (b"dry_run&limit=", b"dry_run"),
            (b"ids=1&ids=&ids=2", b"ids=1&ids=2"),
            (b"q=+", b"q=+"),
        ],
    )
    def test_what_is_dropped(self, query: bytes, kept: bytes) -> None:
        assert without_empty_values(query) == kept
