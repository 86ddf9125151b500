"""Settings documents: PUT replaces the whole document, PATCH changes only the fields it names."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from service.models import Role
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant

# (path, the role that writes it, a first change, a second change of other fields, an invalid patch)
DOCUMENTS = [
    (
        "/v1/member-settings",
        Role.BRAND_ADMIN,
        {"new_days": 10, "active_days": 60, "churn_days": 200, "adjustment_approval_points": 50},
        {"erase_inactive_after_days": 730},
        ({"new_days": 0}, "new_days"),
    ),
    (
        "/v1/antifraud/clone-rules",
        Role.OPERATIONS,
        {"max_speed_kmh": None, "regions": 4},
        {"devices": 20},
        ({"devices": "many"}, "devices"),
    ),
    (
        "/v1/member-event-settings",
        Role.BRAND_ADMIN,
        {"time_zone": "Asia/Urumqi"},
        {"expiry_notice_days": 7},
        ({"expiry_notice_days": 0}, "expiry_notice_days"),
    ),
]


@pytest.mark.parametrize(("path", "role", "first", "second", "invalid"), DOCUMENTS)
async def test_a_patch_keeps_what_it_does_not_name(
    client: AsyncTestClient[Any],
    tenant_a: Tenant,
    path: str,
    role: Role,
    first: dict[str, Any],
    second: dict[str, Any],
    invalid: tuple[dict[str, Any], str],
) -> None:
    """The README's one-field examples used to be PUTs, which put every other setting back to its default."""
    headers = tenant_a.headers(role)
    defaults = (await client.get(path, headers=headers)).json()
    patched = await client.patch(path, json=first, headers=headers)
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**defaults, **first}
    again = await client.patch(path, json=second, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == {**defaults, **first, **second}
    assert (await client.get(path, headers=headers)).json() == again.json()

    body, field = invalid
    problem = assert_problem(await client.patch(path, json=body, headers=headers), 422, "validation-error")
    assert problem["errors"][0]["field"] == field
    unknown = assert_problem(
        await client.patch(path, json={"surprise": 1}, headers=headers), 422, "validation-error"
    )
    assert unknown["errors"][0]["field"] in {"surprise", "body"}
    assert (await client.get(path, headers=headers)).json() == again.json()  # refused patches change nothing

    replaced = await client.put(path, json=second, headers=headers)
    assert replaced.json() == {**defaults, **second}  # PUT: the whole document


async def test_a_patch_needs_the_writers_role(client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
    response = await client.patch(
        "/v1/member-settings", json={"new_days": 5}, headers=tenant_a.headers(Role.MARKETER)
    )
    assert_problem(response, 403, "forbidden")
