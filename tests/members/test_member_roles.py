"""Who may call each member route: every (route, role) pair over HTTP, from a table covering them all."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from service import auth
from service.models import Role, TokenIn
from service.routes import member_admin
from tests.api.test_errors import assert_problem
from tests.api.test_tenancy import SAMPLE_BODIES, _fill, objects_of
from tests.fixtures_codes import issue_batch
from tests.members.test_member_admin import PHONE_E164, enrolled_member

if TYPE_CHECKING:
    import psycopg
    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from service.settings import Settings
    from tests.conftest import Tenant

# The modules whose every route the table below must name.
MODULES = frozenset({"service.routes.member_admin", "service.routes.membership", "service.routes.webhooks"})

ADMIN = frozenset({Role.BRAND_ADMIN})
# Everyone in the brand's office who works with members; not operations, tills or distributors.
READERS = frozenset({Role.BRAND_ADMIN, Role.MARKETER, Role.CUSTOMER_SERVICE, Role.FINANCE, Role.AUDITOR})
# Customer service corrects profiles and merges duplicates; marketers do not touch personal data.
EDITORS = frozenset({Role.BRAND_ADMIN, Role.CUSTOMER_SERVICE})
TAGGERS = frozenset({Role.BRAND_ADMIN, Role.MARKETER, Role.CUSTOMER_SERVICE})
# The programme's design (tags, tiers, segments) and its exports: never customer service.
DESIGNERS = frozenset({Role.BRAND_ADMIN, Role.MARKETER})
ADJUSTERS = frozenset({Role.CUSTOMER_SERVICE, Role.FINANCE})

# Who may call each route; every other role, brand or platform, gets a 403 problem.
# Written out here rather than read from the code, so that a changed guard fails this test.
EXPECTED: dict[tuple[str, str], frozenset[Role]] = {
    # service/routes/member_admin.py
    ("POST", "/v1/members:search"): READERS,
    ("GET", "/v1/members/{member_id:uuid}"): READERS,
    ("PATCH", "/v1/members/{member_id:uuid}"): EDITORS,
    ("GET", "/v1/members/{member_id:uuid}/timeline"): READERS,
    ("POST", "/v1/members/{member_id:uuid}/notes"): EDITORS,
    ("PUT", "/v1/members/{member_id:uuid}/tags/{tag_name:str}"): TAGGERS,
    ("DELETE", "/v1/members/{member_id:uuid}/tags/{tag_name:str}"): TAGGERS,
    ("POST", "/v1/members/{member_id:uuid}/merge"): EDITORS,
    ("POST", "/v1/members/{member_id:uuid}/points/adjustments"): ADJUSTERS,
    ("GET", "/v1/points-adjustments"): frozenset({Role.FINANCE, Role.BRAND_ADMIN, Role.AUDITOR}),
    # Four eyes: finance decides the large adjustments, nobody else.
    ("POST", "/v1/points-adjustments/{request_id:int}/{decision:str}"): frozenset({Role.FINANCE}),
    ("GET", "/v1/member-attributes"): READERS,
    ("POST", "/v1/member-attributes"): ADMIN,
    ("POST", "/v1/member-imports"): ADMIN,
    ("GET", "/v1/member-imports/{import_id:uuid}"): ADMIN,
    # The error file holds the rejected rows' phones in clear.
    ("GET", "/v1/member-imports/{import_id:uuid}/errors.csv"): ADMIN,
    # service/routes/membership.py
    ("POST", "/v1/tags"): DESIGNERS,
    ("GET", "/v1/tags"): READERS,
    ("DELETE", "/v1/tags/{tag_name:str}"): DESIGNERS,
    ("GET", "/v1/member-tiers"): READERS,
    ("PUT", "/v1/member-tiers"): DESIGNERS,
    ("GET", "/v1/member-settings"): READERS,
    ("PUT", "/v1/member-settings"): ADMIN,
    ("PATCH", "/v1/member-settings"): ADMIN,
    ("POST", "/v1/segments"): DESIGNERS,
    ("GET", "/v1/segments"): READERS,
    ("GET", "/v1/segments/{segment_id:uuid}"): READERS,
    ("PUT", "/v1/segments/{segment_id:uuid}"): DESIGNERS,
    ("DELETE", "/v1/segments/{segment_id:uuid}"): DESIGNERS,
    ("POST", "/v1/segments:count"): READERS,
    ("GET", "/v1/segments/{segment_id:uuid}/count"): READERS,
    ("GET", "/v1/segments/{segment_id:uuid}/members.csv"): DESIGNERS,
    ("GET", "/v1/kpis"): READERS,
    # service/routes/webhooks.py: member data leaves the building, so administrators only.
    ("POST", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks"): ADMIN,
    ("DELETE", "/v1/webhooks/{webhook_id:uuid}"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id:uuid}/deliveries"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:int}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:int}/retry"): ADMIN,
    ("GET", "/v1/member-events"): READERS,
    ("GET", "/v1/member-event-settings"): READERS,
    ("PUT", "/v1/member-event-settings"): ADMIN,
    ("PATCH", "/v1/member-event-settings"): ADMIN,
}

# POSTs that only read: the phone search stays out of URLs, the segment builder counts an unsaved filter.
READ_ONLY_POSTS = {("POST", "/v1/members:search"), ("POST", "/v1/segments:count")}
SAFE_METHODS = {"GET", "HEAD"}
# Sent by the roles that must be refused: a 403 comes before the body is looked at.
INVALID_BODY = {"no such field": ["at", "all"]}


def member_routes(app: Litestar) -> dict[tuple[str, str], frozenset[Role] | None]:
    """(method, path) of every handler in MODULES, with the roles its guard declares."""
    found: dict[tuple[str, str], frozenset[Role] | None] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if getattr(handler.fn, "__module__", None) in MODULES:
                for method in handler.http_methods:
                    found[(method, route.path)] = handler.opt.get("roles")
    return found


async def tokens_for_every_role(
    db: psycopg.AsyncConnection[Any], tenant: Tenant, distributor_id: str, platform_token: str
) -> dict[Role, str]:
    """The tenant's tokens, plus a distributor's of the same brand and the platform's."""
    distributor = await auth.create_token(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=TokenIn(role=Role.DISTRIBUTOR, name="distributor", distributor_id=uuid.UUID(distributor_id)),
        default_ttl_days=1,
    )
    tokens = {**tenant.tokens, Role.DISTRIBUTOR: distributor.secret, Role.PLATFORM_ADMIN: platform_token}
    assert set(tokens) == set(Role)
    return tokens


class TestRoleTable:
    def test_every_member_route_has_an_entry_and_no_entry_is_stale(self, app: Litestar) -> None:
        """A route added to member_admin, membership or webhooks without a row here fails the suite."""
        routes = member_routes(app)
        missing = sorted(set(routes) - set(EXPECTED))
        stale = sorted(set(EXPECTED) - set(routes))
        assert not missing, f"add these routes to EXPECTED: {missing}"
        assert not stale, f"these EXPECTED routes no longer exist: {stale}"

    def test_each_guard_declares_the_roles_of_the_table(self, app: Litestar) -> None:
        """The declared guards match the table (the HTTP matrix below checks that they are enforced)."""
        declared = member_routes(app)
        differ = {
            key: (sorted(declared[key] or ()), sorted(EXPECTED[key]))
            for key in EXPECTED
            if key in declared and declared[key] != EXPECTED[key]
        }
        assert not differ, differ

    def test_the_table_keeps_the_products_promises(self) -> None:
        """Customer service exports nothing, marketers never handle clear phones, finance alone decides
        large adjustments, auditors only read."""
        assert Role.CUSTOMER_SERVICE not in EXPECTED[("GET", "/v1/segments/{segment_id:uuid}/members.csv")]
        for key in (
            ("GET", "/v1/member-imports/{import_id:uuid}/errors.csv"),
            ("POST", "/v1/member-imports"),
            ("PATCH", "/v1/members/{member_id:uuid}"),
            ("POST", "/v1/members/{member_id:uuid}/notes"),
        ):
            assert Role.MARKETER not in EXPECTED[key], key
        assert Role.MARKETER not in member_admin.PHONE_READERS
        assert EXPECTED[("POST", "/v1/points-adjustments/{request_id:int}/{decision:str}")] == {Role.FINANCE}
        writes_for_auditors = [
            key
            for key, allowed in EXPECTED.items()
            if Role.AUDITOR in allowed and key[0] not in SAFE_METHODS and key not in READ_ONLY_POSTS
        ]
        assert writes_for_auditors == []
        nobody = {Role.OPERATIONS, Role.POINT_OF_SALE, Role.DISTRIBUTOR, Role.PLATFORM_ADMIN}
        assert not any(nobody & allowed for allowed in EXPECTED.values())


class TestRoleMatrix:
    async def test_every_route_answers_every_role_as_the_table_says(
        self,
        app: Litestar,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        platform_token: str,
    ) -> None:
        """Allowed: anything but 403 and never a 500 (a 404 or 422 for a made-up request is fine).
        Refused: a 403 problem of type `forbidden`, even when the body is invalid."""
        ids = await objects_of(db, tenant_a, settings.master_key)
        tokens = await tokens_for_every_role(db, tenant_a, ids["distributor_id"], platform_token)
        routes = member_routes(app)
        assert set(routes) == set(EXPECTED)
        wrong: list[str] = []
        checked = 0
        # Deletions last, so that the objects they remove are still there for the other routes.
        for method, template in sorted(EXPECTED, key=lambda k: (k[0] == "DELETE", k[1], k[0])):
            path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids[m.group(1)], template)
            sample = SAMPLE_BODIES.get((method, template))
            for role in sorted(Role, key=lambda r: r.value):
                allowed = role in EXPECTED[(method, template)]
                kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {tokens[role]}"}}
                if method in {"POST", "PUT", "PATCH"}:
                    body = _fill(sample, ids) if allowed else INVALID_BODY
                    if body is not None:
                        kwargs["json"] = body
                response = await client.request(method, path, **kwargs)
                checked += 1
                where = f"{method} {template} as {role}: {response.status_code} {response.text[:200]}"
                if allowed:
                    if response.status_code == 403 or response.status_code >= 500:
                        wrong.append(f"expected allowed: {where}")
                elif response.status_code != 403:
                    wrong.append(f"expected 403: {where}")
                else:
                    assert_problem(response, 403, "forbidden")
        assert not wrong, "\n".join(wrong)
        assert checked == len(EXPECTED) * len(Role)


class TestPhoneVisibility:
    async def test_only_admins_and_customer_service_see_phones_and_note_texts(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Profile, search and timeline: finance, auditors and marketers get a masked phone and no note
        text; the segment export masks phones for every role that may run it."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=2)
        member_id = await enrolled_member(client, db, issued.urls[0], "device-roles-phone")
        noted = await client.post(
            f"/v1/members/{member_id}/notes",
            json={"body": "call back at 18:00"},
            headers=tenant_a.headers(Role.CUSTOMER_SERVICE),
        )
        assert noted.status_code == 201, noted.text
        revealers = member_admin.PHONE_READERS
        for role in sorted(READERS, key=lambda r: r.value):
            headers = tenant_a.headers(role)
            reveal = role in revealers
            expected_phone = PHONE_E164 if reveal else "+86138****8000"
            profile = (await client.get(f"/v1/members/{member_id}", headers=headers)).json()
            assert (profile["phone"], profile["phone_revealed"]) == (expected_phone, reveal), role
            found = await client.post("/v1/members:search", json={"phone": "13800138000"}, headers=headers)
            assert [(m["phone"], m["phone_revealed"]) for m in found.json()] == [(expected_phone, reveal)]
            timeline = (await client.get(f"/v1/members/{member_id}/timeline", headers=headers)).json()
            [note] = [e for e in timeline if e["kind"] == "note"]
            assert ("body" in note["detail"]) is reveal, role
        assert revealers == {Role.BRAND_ADMIN, Role.CUSTOMER_SERVICE}
        segment = await client.post(
            "/v1/segments", json={"name": "all", "filter": {}}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert segment.status_code == 201, segment.text
        for role in sorted(DESIGNERS, key=lambda r: r.value):
            exported = await client.get(
                f"/v1/segments/{segment.json()['id']}/members.csv", headers=tenant_a.headers(role)
            )
            assert exported.status_code == 200, exported.text
            assert "13800138000" not in exported.text and "*******8000" in exported.text, role
