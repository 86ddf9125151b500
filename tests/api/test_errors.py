"""Every error is RFC 9457 problem+json with a stable type; client mistakes never yield a 500."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from service.problems import PROBLEM_BASE, exception_handlers
from tests.conftest import Tenant


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# litestar drops the constraints of `Annotated[int, Parameter(ge=0)] | None`: a negative number passed
# straight through. `Annotated[int | None, Parameter(ge=0)]` keeps them.
_OPTIONAL_OUTSIDE = re.compile(r"Annotated\[[^\[\]]*Parameter\([^\]]*\)\] \| None")


def test_query_constraints_are_written_where_litestar_applies_them() -> None:
    sources = sorted((Path(__file__).resolve().parents[2] / "service").rglob("*.py"))
    found = [f"{p.name}: {m[0]}" for p in sources for m in _OPTIONAL_OUTSIDE.finditer(p.read_text())]
    assert found == [], "write Annotated[T | None, Parameter(...)]"


class TestProblemShape:
    async def test_unknown_route_is_404_problem(self, client: AsyncTestClient[Any]) -> None:
        """Unknown paths answer a 404 problem, not an HTML page."""
        assert_problem(await client.get("/no/such/thing"), 404, "not-found")

    async def test_wrong_method_is_405_problem(self, client: AsyncTestClient[Any]) -> None:
        """A known path with the wrong method answers 405."""
        assert_problem(await client.delete("/healthz"), 405, "method-not-allowed")

    async def test_missing_token_is_401(self, client: AsyncTestClient[Any]) -> None:
        """Admin routes without a token answer 401."""
        assert_problem(await client.get("/v1/brands"), 401, "unauthenticated")

    async def test_garbage_token_is_401(self, client: AsyncTestClient[Any]) -> None:
        """An unknown token is indistinguishable from a missing one."""
        response = await client.get("/v1/brands", headers={"Authorization": "Bearer oc_nope"})
        assert_problem(response, 401, "unauthenticated")

    async def test_malformed_json_is_400(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """Bytes that are not JSON answer 400 malformed-body."""
        response = await client.post(
            "/v1/tokens",
            content=b'{"role": ',
            headers={**tenant_a.headers(), "content-type": "application/json"},
        )
        assert_problem(response, 400, "malformed-body")

    async def test_an_empty_body_is_named_as_such(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """No bytes at all where a JSON body is expected: litestar said only `'data'`."""
        response = await client.post(
            "/v1/tokens", content=b"", headers={**tenant_a.headers(), "content-type": "application/json"}
        )
        body = assert_problem(response, 422, "validation-error")
        assert body["errors"] == [{"field": "body", "message": "a JSON body is required"}]

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/v1/products", b"[]"),
            ("POST", "/v1/tokens", b'"a string"'),
            ("PATCH", "/v1/member-settings", b"[]"),  # a dict body
            ("PUT", "/v1/member-tiers", b"5"),
            ("POST", "/v1/scans", b"[]"),  # answered before litestar's routing
        ],
    )
    async def test_a_body_of_the_wrong_type_is_named_body(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, method: str, path: str, body: bytes
    ) -> None:
        """A whole body of the wrong type is `body`, as an empty one is, never litestar's parameter `data`."""
        headers = {**tenant_a.headers(), "content-type": "application/json"}
        response = await client.request(method, path, content=body, headers=headers)
        problem = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == ["body"], problem
        assert problem["errors"][0]["message"].startswith("Expected `object`, got")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"role": "marketer", "name": 5}, "name"),
            ({"role": "emperor", "name": "x"}, "role"),
            ({"role": "marketer", "name": "x", "ttl_days": 0}, "ttl_days"),
            ({"role": "marketer", "name": "x", "surprise": 1}, "surprise"),
            ({"name": "x"}, "role"),  # a missing field is named, not the whole body
        ],
    )
    async def test_wrong_types_are_422_with_the_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, body: dict[str, Any], field: str
    ) -> None:
        """Validation failures name the offending field."""
        response = await client.post("/v1/tokens", json=body, headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == [field]

    async def test_a_missing_nested_field_is_named_by_its_path(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        body = {
            "name": "Draw",
            "kind": "lucky_draw",
            "starts_at": "2026-01-01T00:00:00+08:00",
            "ends_at": "2026-02-01T00:00:00+08:00",
            "budget_cents": 100,
            "prizes": [{"name": "Cup", "kind": "physical", "stock": 1, "cost_cents": 1}],
        }
        response = await client.post("/v1/campaigns", json=body, headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == ["prizes[0].weight"], problem

    async def test_a_number_no_column_holds_is_422_not_500(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A cursor past bigint reaches PostgreSQL's cast: still the client's mistake."""
        response = await client.get("/v1/audit", params={"after": 10**20}, headers=tenant_a.headers())
        assert_problem(response, 422, "validation-error")

    async def test_body_over_the_limit_is_413(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """Bodies above ONECODE_MAX_BODY_BYTES (64 KiB) are refused before parsing."""
        response = await client.post(
            "/v1/tokens",
            content=b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
            headers={**tenant_a.headers(), "content-type": "application/json"},
        )
        assert_problem(response, 413, "body-too-large")

    async def test_odd_unicode_is_a_client_error(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Lone surrogates and invalid UTF-8 are rejected as 4xx, never 500."""
        response = await client.post(
            "/v1/tokens",
            content=b'{"role": "marketer", "name": "\xff\xfe"}',
            headers={**tenant_a.headers(), "content-type": "application/json"},
        )
        assert 400 <= response.status_code < 500
        assert response.headers["content-type"].startswith("application/problem+json")

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/v1/tokens", {"role": "marketer", "name": "m\u0000"}),
            ("POST", "/v1/products", {"name": "a\u0000b", "gtin": "6901234567878"}),
            ("POST", "/v1/products", {"name": "ab", "gtin": "6901234567878", "facts": {"k": "v\u0000"}}),
            ("GET", "/v1/audit?action=a%00b", None),
        ],
    )
    async def test_a_nul_character_is_422_not_500(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, method: str, path: str, body: Any
    ) -> None:
        """PostgreSQL's text cannot hold a NUL (U+0000): a string with one is the client's mistake, in a
        column (refused by psycopg), in JSON (refused by the server) or in a query parameter."""
        response = await client.request(method, path, json=body, headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert "NUL" in problem["detail"]

    @pytest.mark.parametrize("path", ["/v1/members/otp", "/console/login", "/v1/products"])
    async def test_json_nested_too_deeply_is_400_not_500(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, path: str
    ) -> None:
        """msgspec refuses nesting past the interpreter's recursion limit with a RecursionError."""
        body = b"[" * 5000 + b"]" * 5000
        headers = {**tenant_a.headers(), "content-type": "application/json"}
        problem = assert_problem(
            await client.post(path, content=body, headers=headers), 400, "malformed-body"
        )
        assert problem["detail"] == "JSON nested too deeply"

    async def test_a_long_request_is_not_echoed_whole(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A 3,000-character serial fails validation; the problem quotes its start, not all of it."""
        response = await client.get(f"/v1/codes/{'A' * 3000}/trace", headers=tenant_a.headers())
        problem = assert_problem(response, 422, "validation-error")
        assert len(problem["detail"]) <= 300 and problem["detail"].endswith("…")

    async def test_request_id_is_echoed(self, client: AsyncTestClient[Any]) -> None:
        """A caller's X-Request-ID comes back, so logs on both sides line up."""
        response = await client.get("/healthz", headers={"X-Request-ID": "req-12345678"})
        assert response.headers["x-request-id"] == "req-12345678"
        # Also when no route matched: the router's 404 and 405 answer inside the same request context.
        for unrouted in (
            await client.get("/no/such/thing", headers={"X-Request-ID": "req-404-abcdef"}),
            await client.delete("/healthz", headers={"X-Request-ID": "req-405-abcdef"}),
        ):
            expected = f"req-{unrouted.status_code}-abcdef"
            assert unrouted.headers.get_list("x-request-id") == [expected]
            assert unrouted.json()["request_id"] == expected


async def test_a_duplicate_the_domain_did_not_name_is_409_not_500(db: psycopg.AsyncConnection[Any]) -> None:
    """The last guard behind the domain's own "already exists" errors: a unique violation that reaches
    the handlers is the request colliding with stored data (409), never a server error."""

    @get("/collide")
    async def collide() -> None:
        await db.execute("CREATE TEMPORARY TABLE collisions (name text PRIMARY KEY)")
        await db.execute("INSERT INTO collisions VALUES ('a'), ('a')")

    app = Litestar([collide], exception_handlers=exception_handlers())
    async with AsyncTestClient(app) as client:
        response = await client.get("/collide")
    assert response.status_code == 409, response.text
    assert response.json()["type"] == PROBLEM_BASE + "conflict"
