"""Erasure reaches member imports: the original cells that import rows keep of a member go with it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from campaigns.members import profiles
from service.models import Role
from service.routes.scans import MEMBER_COOKIE
from service.settings import Settings
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch
from tests.members.test_consents import enrol
from tests.members.test_imports import post_csv
from tests.scans.test_members_api import enroll, scanned_token

# The scanned member's phone is +8613800138000 (the enrolment helper's); Cat is created by the import.
LIST = """phone,name,birthday
13800138000,Ann,1990-01-01
138 0013 8000,Ann again,
+86 138-0013-8000,Ann,2999-01-01
13900139000,Bob,2999-01-01
13700137000,Cat,
13700137000,Cat twin,
"""


async def kept_cells(
    db: psycopg.AsyncConnection[Any], import_id: str
) -> dict[int, tuple[str, uuid.UUID | None]]:
    """{row: (outcome, member named)} of the rows that still keep their original cells."""
    cur = await db.execute(
        "SELECT row_number, outcome, member_id FROM member_import_rows"
        " WHERE import_id = %s AND raw_sealed IS NOT NULL ORDER BY row_number",
        (import_id,),
    )
    return {row: (outcome, member) for row, outcome, member in await cur.fetchall()}


async def error_file(client: AsyncTestClient[Any], tenant: Tenant, import_id: str) -> list[list[str]]:
    found = await client.get(
        f"/v1/member-imports/{import_id}/errors.csv", headers=tenant.headers(Role.BRAND_ADMIN)
    )
    assert found.status_code == 200, found.text
    return list(csv.reader(io.StringIO(found.content.decode("utf-8-sig"))))[1:]


class TestErasureOfImportRows:
    async def test_erased_members_lose_the_cells_their_import_rows_kept(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Duplicate and rejected rows with a member's phone name that member; its own erasure, and the
        retention erasure, purge their cells. A rejected phone nobody has keeps its cells until that
        phone enrols and its member is erased."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=2)
        enrolled = await enroll(client, db, await scanned_token(client, issued.urls[0], "device-erase-1"))
        assert enrolled.status_code == 200, enrolled.text
        ann = uuid.UUID(enrolled.json()["member"]["id"])
        cookie = {"Cookie": f"{MEMBER_COOKIE}={enrolled.json()['member_token']}"}
        client.cookies.clear()

        imported = await post_csv(client, tenant_a, LIST.encode())
        assert imported.status_code == 200, imported.text
        report = imported.json()
        assert (report["merged"], report["created"], report["duplicates"], report["rejected"]) == (1, 1, 2, 2)
        cur = await db.execute(
            "SELECT member_id FROM member_import_rows WHERE import_id = %s AND row_number = 5",
            (report["id"],),
        )
        cat = ((await cur.fetchone()) or [None])[0]
        assert isinstance(cat, uuid.UUID)
        assert await kept_cells(db, report["id"]) == {
            2: ("duplicate", ann),
            3: ("rejected", ann),
            4: ("rejected", None),
            6: ("duplicate", cat),
        }

        erased = await client.delete("/v1/members/me", headers=cookie)
        assert erased.status_code == 204, erased.text
        assert await kept_cells(db, report["id"]) == {4: ("rejected", None), 6: ("duplicate", cat)}
        cells = await error_file(client, tenant_a, report["id"])
        assert [(r[0], r[3], r[4]) for r in cells] == [
            ("2", "", ""),
            ("3", "", ""),
            ("4", "13900139000", "Bob"),
            ("6", "13700137000", "Cat twin"),
        ]

        # The retention path erases the same way: Cat, idle past the brand's limit, loses row 6's cells.
        settings_set = await client.put(
            "/v1/member-settings", json={"erase_inactive_after_days": 30}, headers=tenant_a.headers()
        )
        assert settings_set.status_code == 200, settings_set.text
        async with db.transaction():
            assert await profiles.erase_inactive(db, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=31)) == 1
        assert await kept_cells(db, report["id"]) == {4: ("rejected", None)}
        cur = await db.execute("SELECT erased_at IS NOT NULL FROM members WHERE id = %s", (cat,))
        assert await cur.fetchone() == (True,)

        # A phone that enrols after the import: its member's erasure finds row 4 by the phone it kept.
        _, bob_cookie = await enrol(
            client, db, issued.urls[1], "device-erase-bob", phone="+8613900139000", marketing=False
        )
        erased = await client.delete("/v1/members/me", headers=bob_cookie)
        assert erased.status_code == 204, erased.text
        assert await kept_cells(db, report["id"]) == {}
