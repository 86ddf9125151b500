"""Master-key rotation, last step: every value sealed under an older master key is sealed again under
the current one, the secrets unchanged, so that the old key can be retired.

The sealed values are made the way the service makes them (the HTTP API and the domain functions, under
the key of the `settings` fixture), not by hand-written SQL unless a test says why; each one must then
open under the new key alone to exactly what it held before, and the service must keep working once the
old key is gone.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
import pyotp
import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from campaigns import coupons, draws, rewards
from campaigns.members import imports, phones, profiles, webhooks
from campaigns.members.tokens import MemberRef, MemberTokens
from codegen import keyring, keys
from service import cli, users
from service.app import create_app
from service.models import Role
from service.reseal import ColumnReport, reseal_all
from service.settings import Settings
from tests.api.test_console_auth import invited_user, sign_in
from tests.campaigns.test_campaign_api import create, step
from tests.campaigns.test_scan_rewards import NOW, draw_campaign, launch, scan
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch
from tests.members.test_webhooks import create_webhook
from tests.scans.test_members_api import enroll, scanned_token

# --- the sealed columns, as this test reads them -----------------------------------------------------

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    """How to read one sealed column: a query whose last field is the blob and whose other fields name
    the row (its primary key, plus whatever else the value's associated data is built from)."""

    query: str
    aad: Callable[[Key], bytes]


COLUMNS: dict[str, Column] = {
    "brand_keys.sealed_mac_key": Column(
        "SELECT brand_id, key_id, sealed_mac_key FROM brand_keys",
        lambda k: keyring.mac_aad(k[0], k[1]),
    ),
    "brand_keys.sealed_ed25519": Column(
        "SELECT brand_id, key_id, sealed_ed25519 FROM brand_keys",
        lambda k: keyring.ed25519_aad(k[0], k[1]),
    ),
    "campaigns.seed_sealed": Column(
        "SELECT id, brand_id, seed_sealed FROM campaigns WHERE seed_sealed IS NOT NULL",
        lambda k: draws.seed_aad(k[1]),
    ),
    "console_users.totp_secret_sealed": Column(
        "SELECT id, totp_secret_sealed FROM console_users WHERE totp_secret_sealed IS NOT NULL",
        lambda k: users.totp_aad(k[0]),
    ),
    "coupons.code_sealed": Column(
        "SELECT id, brand_id, code_sealed FROM coupons WHERE code_sealed IS NOT NULL",
        lambda k: coupons.code_aad(k[1]),
    ),
    "member_import_rows.raw_sealed": Column(
        "SELECT import_id, row_number, raw_sealed FROM member_import_rows WHERE raw_sealed IS NOT NULL",
        lambda k: imports.raw_aad(k[0], k[1]),
    ),
    "members.data_key_sealed": Column(
        "SELECT id, data_key_sealed FROM members WHERE data_key_sealed IS NOT NULL",
        lambda k: phones.member_key_aad(k[0]),
    ),
    "prize_claims.address_sealed": Column(
        "SELECT campaign_id, scan_id, address_sealed FROM prize_claims WHERE address_sealed IS NOT NULL",
        lambda k: rewards.claim_aad(k[0], k[1]),
    ),
    "webhooks.secret_sealed": Column(
        "SELECT id, secret_sealed FROM webhooks WHERE secret_sealed IS NOT NULL",
        lambda k: webhooks.secret_aad(k[0]),
    ),
}

# Personal fields, sealed under each member's own data key: re-sealing the data key (above) is what moves
# them, and they must stay as they are. Only those of members from before data keys (migration 0014) are
# under the master key itself, and must move (see the test of those).
UNDER_DATA_KEYS = {"members.phone_sealed", "members.profile_sealed", "member_notes.body_sealed"}
DATA_KEY_FIELDS = {
    "members.phone_sealed": "SELECT id, phone_sealed FROM members WHERE phone_sealed IS NOT NULL",
    "members.profile_sealed": "SELECT id, profile_sealed FROM members WHERE profile_sealed IS NOT NULL",
    "member_notes.body_sealed": "SELECT id, body_sealed FROM member_notes",
}

# How many values the `world` fixture seals in each column (checked, so that no column is tested empty).
SEEDED = {
    "brand_keys.sealed_mac_key": 2,  # the first key of the brand's first batch, then a rotation
    "brand_keys.sealed_ed25519": 2,
    "campaigns.seed_sealed": 2,  # an active draw and a scheduled one
    "console_users.totp_secret_sealed": 1,
    "coupons.code_sealed": 2,  # one per scan of the coupon campaign
    "member_import_rows.raw_sealed": 2,  # the rejected rows of the import
    "members.data_key_sealed": 4,  # three imported members and one enrolled by phone
    "prize_claims.address_sealed": 2,  # one per prize won and claimed
    "webhooks.secret_sealed": 2,
    # Blind indexes, keyed by the master key too, written again under the current one from the phone:
    "members.phone_index": 4,  # the four members above, all with a phone
    "member_import_rows.phone_index": 1,  # the rejected row whose phone is valid (13900138005)
}
BLIND_INDEXES = {"members.phone_index", "member_import_rows.phone_index"}


async def read_indexes(db: psycopg.AsyncConnection[Any]) -> dict[str, dict[Key, bytes]]:
    """Every stored blind index, keyed by row."""
    members = await (
        await db.execute("SELECT id, phone_index FROM members WHERE phone_index IS NOT NULL")
    ).fetchall()
    rows = await (
        await db.execute(
            "SELECT import_id, row_number, phone_index FROM member_import_rows WHERE phone_index IS NOT NULL"
        )
    ).fetchall()
    return {
        "members.phone_index": {(r[0],): bytes(r[1]) for r in members},
        "member_import_rows.phone_index": {(r[0], r[1]): bytes(r[2]) for r in rows},
    }


Blobs = dict[str, dict[Key, bytes]]


async def read_blobs(db: psycopg.AsyncConnection[Any]) -> Blobs:
    """Every sealed value of every column, keyed by row."""
    found: Blobs = {}
    for name, column in COLUMNS.items():
        cur = await db.execute(column.query)
        found[name] = {tuple(row[:-1]): bytes(row[-1]) for row in await cur.fetchall()}
    return found


def open_blobs(blobs: Blobs, master_keys: Sequence[bytes]) -> Blobs:
    """The plaintext of every value, opened with `master_keys` only (raises if one does not open)."""
    return {
        name: {key: keys.unseal(master_keys, blob, aad=COLUMNS[name].aad(key)) for key, blob in rows.items()}
        for name, rows in blobs.items()
    }


async def read_data_key_fields(db: psycopg.AsyncConnection[Any]) -> Blobs:
    """The personal fields sealed under members' data keys: no run may touch them."""
    found: Blobs = {}
    for name, query in DATA_KEY_FIELDS.items():
        cur = await db.execute(query)
        found[name] = {tuple(row[:-1]): bytes(row[-1]) for row in await cur.fetchall()}
    return found


def counts(blobs: Blobs) -> dict[str, int]:
    return {name: len(rows) for name, rows in blobs.items()}


async def run_reseal(
    settings: Settings, master_keys: Sequence[bytes], *, batch_size: int = 500, dry_run: bool = False
) -> dict[str, ColumnReport]:
    """`reseal_all` on a connection of its own, as the CLI runs it (not autocommit: it commits itself)."""
    async with await psycopg.AsyncConnection.connect(settings.database_url or "") as conn:
        reports = await reseal_all(conn, master_keys, batch_size=batch_size, dry_run=dry_run)
    by_column = {r.column: r for r in reports}
    assert len(by_column) == len(reports), f"a column reported twice: {[r.column for r in reports]}"
    return by_column


Figures = tuple[int, int, int, int]


def figures_of(reports: dict[str, ColumnReport]) -> dict[str, Figures]:
    """(resealed, to_reseal, current, unreadable) per column, for whole-table comparisons."""
    return {c: (r.resealed, r.to_reseal, r.current, r.unreadable) for c, r in reports.items()}


def expected(reports: dict[str, ColumnReport], per_column: Callable[[int], Figures]) -> dict[str, Figures]:
    """The figures `reports` should show, from the number of values seeded in each master-key column.

    The job may also report the columns of personal fields (they hold values of members from before data
    keys, sealed under the master key itself); in the `world` every such value is under a data key, which
    is neither moved nor counted: those columns must report zeros.
    """
    extra = set(reports) - set(SEEDED)
    assert extra <= UNDER_DATA_KEYS, f"reported columns unknown to this test: {extra - UNDER_DATA_KEYS}"
    return {c: per_column(n) for c, n in SEEDED.items()} | dict.fromkeys(extra, (0, 0, 0, 0))


# --- the data: one world with values in every sealed column, all under the old key --------------------

IMPORT = (
    "phone,name,points\n"
    "13800138001,王小明,100\n"
    "13900138002,李华,0\n"
    "13900138003,Ann,5\n"
    "12345,坏号码,10\n"  # rejected (phone): its cells are kept, sealed
    "13900138005,负分,-3\n"  # rejected (points)
)


@dataclass(frozen=True)
class World:
    tenant: Tenant
    urls: list[str]
    draw_id: str
    # What the API handed out in clear, to check the re-sealed values against more than themselves.
    coupon_codes: dict[str, str]  # device -> the coupon code its scan was given
    addresses: dict[Key, dict[str, str]]  # (campaign id, scan id) -> the address claimed
    webhook_secrets: dict[uuid.UUID, str]
    totp_secret: str
    user_email: str
    import_id: str
    imported_member_id: str
    enrolled_member_id: str
    seed_hashes: dict[uuid.UUID, bytes]  # campaign id -> the SHA-256 of its seed, published


@pytest.fixture
async def world(settings: Settings, db: psycopg.AsyncConnection[Any], tenant_a: Tenant) -> World:
    """Values in each of the nine columns, made through the service under the old key (`settings`).

    The app runs in a client of its own, closed before the test starts: no background loop of the old
    app touches the data while a test re-seals it.
    """
    tenant = tenant_a
    # brand_keys (both columns): the first batch creates the brand's key 0 (codegen.batches.create_batch,
    # through keyring.current_key); the API's rotation adds key 1.
    issued = await issue_batch(db, settings, tenant.brand_id, quantity=12)
    async with AsyncTestClient(app=create_app(settings)) as client:
        rotated = await client.post(f"/v1/brands/{tenant.brand_id}/keys:rotate", headers=tenant.headers())
        assert rotated.status_code == 201, rotated.text
        # members.data_key_sealed: a scanning member enrols a phone (OTP), which gives it a data key.
        enrolled_member_id = await _enrolled_member_with_a_note(client, db, tenant, issued.urls[11])
        # campaigns.seed_sealed, coupons.code_sealed, prize_claims.address_sealed: two scans, each given
        # a coupon and a physical prize, whose winner claims it with an address.
        draw_id = await _campaigns(client, tenant)
        coupon_codes: dict[str, str] = {}
        addresses: dict[Key, dict[str, str]] = {}
        for n in range(2):
            device = f"device-reseal-{n}"
            coupon_codes[device], claim, addresses[claim] = await _win_and_claim(
                client, issued.urls[n], device, draw_id, n
            )
        # members.data_key_sealed and member_import_rows.raw_sealed: a member list import.
        import_id, imported_member_id = await _import_members(client, tenant)
        # console_users.totp_secret_sealed: a console user's second factor.
        email = "ops@example.com"
        totp_secret = await _console_user_with_totp(client, db, tenant, email)
        # webhooks.secret_sealed: two receivers; each secret is shown once, at creation.
        webhook_secrets: dict[uuid.UUID, str] = {}
        for n in range(2):
            hook = await create_webhook(client, tenant, url=f"https://hooks.example.com/onecode/{n}")
            webhook_secrets[uuid.UUID(hook["id"])] = hook["secret"]

    assert counts(await read_blobs(db)) | counts(await read_indexes(db)) == SEEDED
    cur = await db.execute("SELECT id, seed_hash FROM campaigns WHERE seed_hash IS NOT NULL")
    seed_hashes = {row[0]: bytes(row[1]) for row in await cur.fetchall()}
    return World(
        tenant=tenant,
        urls=issued.urls,
        draw_id=draw_id,
        coupon_codes=coupon_codes,
        addresses=addresses,
        webhook_secrets=webhook_secrets,
        totp_secret=totp_secret,
        user_email=email,
        import_id=import_id,
        imported_member_id=imported_member_id,
        enrolled_member_id=enrolled_member_id,
        seed_hashes=seed_hashes,
    )


async def _enrolled_member_with_a_note(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant, url: str
) -> str:
    """A member who scanned, then enrolled +86 138 0013 8000 by OTP: its data key is sealed under the
    master key; its phone and a service note are sealed under that data key (and must stay as they are)."""
    enrolled = await enroll(client, db, await scanned_token(client, url, "device-reseal-phone"))
    assert enrolled.status_code == 200, enrolled.text
    member_id: str = enrolled.json()["member"]["id"]
    noted = await client.post(
        f"/v1/members/{member_id}/notes",
        json={"body": "asked about the lucky draw"},
        headers=tenant.headers(Role.CUSTOMER_SERVICE),
    )
    assert noted.status_code == 201, noted.text
    return member_id


async def _campaigns(client: AsyncTestClient[Any], tenant: Tenant) -> str:
    """A coupon campaign and a draw where every scan wins a physical prize, stacked (each scan gets
    both); a second draw, scheduled, whose seed is committed too. Returns the active draw's id."""
    template = await client.post(
        "/v1/coupon-templates",
        json={"name": "5 yuan off", "discount_kind": "amount", "amount_off_cents": 500, "valid_days": 30},
        headers=tenant.headers(Role.MARKETER),
    )
    assert template.status_code == 201, template.text
    coupon_campaign = {
        "name": "Scan for a coupon",
        "kind": "coupon",
        "starts_at": (NOW - dt.timedelta(days=1)).isoformat(),
        "ends_at": (NOW + dt.timedelta(days=30)).isoformat(),
        "budget_cents": 100_000,
        "coupon_template_id": template.json()["id"],
        "stackable": True,
        "priority": 2,
    }
    await launch(client, tenant, coupon_campaign)
    draw_id = await launch(client, tenant, draw_campaign(stock=5, stackable=True, priority=1))
    next_week = (NOW + dt.timedelta(days=7)).isoformat()
    later = await create(
        client,
        tenant,
        draw_campaign(name="Next week's draw", starts_at=next_week, stackable=True, priority=0),
    )
    scheduled = await step(client, tenant, later["id"], "schedule")
    assert scheduled.status_code == 200, scheduled.text
    return draw_id


async def _win_and_claim(
    client: AsyncTestClient[Any], url: str, device: str, draw_id: str, n: int
) -> tuple[str, Key, dict[str, str]]:
    """Scan `url`: a coupon and a prize; claim the prize with an address. Returns the coupon's code, the
    claim's key and the address."""
    answer = await scan(client, url, device)
    by_kind = {o["kind"]: o for o in answer["reward"]["outcomes"]}
    assert by_kind.keys() == {"coupon", "lucky_draw"}, answer
    assert by_kind["lucky_draw"]["result"] == "won"
    address = {
        "recipient": f"Winner {n}",
        "phone": f"1380013800{n}",
        "address": f"{n + 1} Nanjing Rd, Shanghai",
    }
    client.cookies.clear()
    claimed = await client.post(
        f"/v1/members/me/prizes/{draw_id}/{answer['scan_id']}/claim",
        json=address,
        headers={"Cookie": f"oc_member={answer['member_token']}"},
    )
    assert claimed.status_code == 200, claimed.text
    code: str = by_kind["coupon"]["coupon"]["code"]
    return code, (uuid.UUID(draw_id), uuid.UUID(answer["scan_id"])), address


async def _import_members(client: AsyncTestClient[Any], tenant: Tenant) -> tuple[str, str]:
    """`IMPORT` through the API: three members created (each with a data key), the two rejected rows'
    cells kept, sealed. Returns the import's id and the id of the member of 13800138001."""
    imported = await client.post(
        "/v1/member-imports",
        content=IMPORT.encode(),
        headers={**tenant.headers(Role.BRAND_ADMIN), "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["created"], report["rejected"]) == (3, 2), report
    found = await client.post(
        "/v1/members:search", json={"phone": "13800138001"}, headers=tenant.headers(Role.CUSTOMER_SERVICE)
    )
    [member] = found.json()
    return str(report["id"]), str(member["id"])


async def _console_user_with_totp(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant, email: str
) -> str:
    """An invited console user who sets up and confirms a TOTP second factor. Returns its secret."""
    await invited_user(client, db, tenant, email, "finance")
    csrf = (await sign_in(client, email)).json()["csrf_token"]
    setup = await client.post("/console/totp/setup", headers={"X-CSRF-Token": csrf})
    assert setup.status_code == 200, setup.text
    secret: str = setup.json()["secret"]
    confirmed = await client.post(
        "/console/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers={"X-CSRF-Token": csrf}
    )
    assert confirmed.status_code == 200, confirmed.text
    client.cookies.clear()
    return secret


def assert_handed_out(plain: Blobs, world: World) -> None:
    """The plaintexts are what the API showed in clear (secrets, codes, addresses, cells, commitments):
    checked against those, not only against the values themselves, a job that sealed the wrong bytes
    consistently from the start would be caught too."""
    assert {k[0]: v.decode() for k, v in plain["webhooks.secret_sealed"].items()} == world.webhook_secrets
    assert [v.decode() for v in plain["console_users.totp_secret_sealed"].values()] == [world.totp_secret]
    codes = {coupons.display(v.decode()) for v in plain["coupons.code_sealed"].values()}
    assert codes == set(world.coupon_codes.values())
    claims = {k: msgspec.json.decode(v) for k, v in plain["prize_claims.address_sealed"].items()}
    assert {k: {f: c[f] for f in ("recipient", "phone", "address")} for k, c in claims.items()} == (
        world.addresses
    )
    raw = [msgspec.json.decode(v) for v in plain["member_import_rows.raw_sealed"].values()]
    assert sorted(r["phone"] for r in raw) == ["12345", "13900138005"]
    # Each draw's seed matches the commitment published when it went live.
    seeds = {k[0]: hashlib.sha256(v).digest() for k, v in plain["campaigns.seed_sealed"].items()}
    assert seeds == world.seed_hashes


# --- the tests ---------------------------------------------------------------------------------------


class TestCoverage:
    async def test_every_master_key_sealed_column_is_resealed(
        self, settings: Settings, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """A migration that adds a sealed column fails here until the reseal job (and this test) cover it:
        otherwise its values would stay under the old key, and retiring that key would lose them.

        The job's columns are taken from what it reports (a dry run on the empty database), so the check
        holds whatever form its list of columns takes."""
        cur = await db.execute(
            "SELECT c.table_name || '.' || c.column_name FROM information_schema.columns c"
            " JOIN pg_namespace n ON n.nspname = c.table_schema"
            " JOIN pg_class t ON t.relnamespace = n.oid AND t.relname = c.table_name"
            " WHERE c.table_schema = 'public' AND c.column_name LIKE '%sealed%'"
            " AND t.relkind IN ('r', 'p') AND NOT t.relispartition"
        )
        in_schema = {str(row[0]) for row in await cur.fetchall()}
        assert in_schema >= UNDER_DATA_KEYS  # the exclusions still name real columns
        under_master_key = in_schema - UNDER_DATA_KEYS
        # This test's own readers cover the same columns, so the checks below leave none out.
        assert set(COLUMNS) == under_master_key
        reported = await run_reseal(settings, (secrets.token_bytes(32),), dry_run=True)
        assert under_master_key <= set(reported) <= in_schema | BLIND_INDEXES
        assert all(f == (0, 0, 0, 0) for f in figures_of(reported).values())


class TestReseal:
    async def test_a_dry_run_then_a_run_move_every_value_keeping_its_secret(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """What an operator does: a dry run (counts, not one byte written), the run (each value now names
        the new key and opens under it alone, to what it held; values under members' data keys are
        untouched), and a run again (nothing left to do). Pages of 2 and 3 rows, so that paging is
        exercised."""
        k_old, k_new = settings.master_key, secrets.token_bytes(32)
        before = await read_blobs(db)
        personal = await read_data_key_fields(db)
        assert all(personal.values())  # phones, profiles and a note, all under data keys
        plain = open_blobs(before, [k_old])

        indexes = await read_indexes(db)
        dry = await run_reseal(settings, (k_new, k_old), batch_size=3, dry_run=True)
        assert figures_of(dry) == expected(dry, lambda n: (0, n, 0, 0))
        assert await read_blobs(db) == before
        assert await read_indexes(db) == indexes

        first = await run_reseal(settings, (k_new, k_old), batch_size=2)
        assert figures_of(first) == expected(first, lambda n: (n, n, 0, 0))
        after = await read_blobs(db)
        assert {c: set(rows) for c, rows in after.items()} == {c: set(rows) for c, rows in before.items()}
        for column, rows in after.items():
            for key, blob in rows.items():
                assert keys.is_sealed_with(k_new, blob), (column, key)
        assert open_blobs(after, [k_new]) == plain
        assert_handed_out(plain, world)
        assert await read_data_key_fields(db) == personal
        # Every blind index is now the phone's under the new key (and none is under the old one).
        reindexed = await read_indexes(db)
        assert {c: set(rows) for c, rows in reindexed.items()} == {
            c: set(rows) for c, rows in indexes.items()
        }
        new_vault, old_vault = phones.MemberVault([k_new]), phones.MemberVault([k_old])
        brand_id = world.tenant.brand_id
        for phone in ("+8613800138001", "+8613900138002", "+8613900138003", "+8613900138005"):
            assert old_vault.blind_index(brand_id, phone) not in {
                i for rows in reindexed.values() for i in rows.values()
            }
        assert {new_vault.blind_index(brand_id, "+8613900138005")} == set(
            reindexed["member_import_rows.phone_index"].values()
        )

        second = await run_reseal(settings, (k_new, k_old))
        assert figures_of(second) == expected(second, lambda n: (0, 0, n, 0))
        assert await read_blobs(db) == after

    async def test_values_under_a_key_not_given_are_unreadable_and_left_alone(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """Run with the new key only (the old one forgotten in the list): nothing is lost or overwritten,
        every value is reported unreadable, and the run completes."""
        k_new = secrets.token_bytes(32)
        before = await read_blobs(db)
        reports = await run_reseal(settings, (k_new,), batch_size=2)
        assert figures_of(reports) == expected(reports, lambda n: (0, 0, 0, n))
        assert await read_blobs(db) == before
        # The right list afterwards still moves everything.
        fixed = await run_reseal(settings, (k_new, settings.master_key))
        assert figures_of(fixed) == expected(fixed, lambda n: (n, n, 0, 0))

    async def test_a_value_failing_authentication_is_unreadable_and_left_alone(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """A blob under a configured key whose associated data does not match (here the two webhooks'
        secrets swapped by hand-written SQL: no domain function does that, which is the point) is
        reported unreadable and kept as it is; every other value still moves."""
        first, second = sorted(world.webhook_secrets)
        await db.execute(
            "UPDATE webhooks w SET secret_sealed = o.secret_sealed FROM webhooks o"
            " WHERE (w.id, o.id) IN ((%(a)s, %(b)s), (%(b)s, %(a)s))",
            {"a": first, "b": second},
        )
        swapped = (await read_blobs(db))["webhooks.secret_sealed"]
        k_new = secrets.token_bytes(32)
        reports = await run_reseal(settings, (k_new, settings.master_key), batch_size=2)
        want = expected(reports, lambda n: (n, n, 0, 0))
        want["webhooks.secret_sealed"] = (0, 0, 0, 2)
        assert figures_of(reports) == want
        after = await read_blobs(db)
        assert after["webhooks.secret_sealed"] == swapped
        assert all(
            keys.is_sealed_with(k_new, blob)
            for column, rows in after.items()
            if column != "webhooks.secret_sealed"
            for blob in rows.values()
        )

    async def test_import_rows_whose_cells_were_purged_are_left_alone(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """Rejected rows' cells are purged after 30 days (the phone's index stays): nothing is left to
        re-index them from, nor anything the index would find. They must not count as unreadable, or the
        job would never report that the old key may go."""
        await imports.purge_rejected_cells(db, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
        assert counts(await read_blobs(db))["member_import_rows.raw_sealed"] == 0
        reports = await run_reseal(settings, (secrets.token_bytes(32), settings.master_key))
        assert figures_of(reports)["member_import_rows.phone_index"] == (0, 0, 0, 0)
        assert all(r.unreadable == 0 for r in reports.values()), figures_of(reports)

    async def test_personal_fields_of_members_from_before_data_keys_move_too(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Members enrolled before migration 0014 have their phone and profile sealed under the master key
        itself (MemberVault.unseal still opens them): retiring the old key must not lose them.

        Hand-written SQL: no domain function seals a personal field under the master key any more; the
        row is made as the code before data keys made it (no data key; fields under the master key)."""
        k_old, k_new = settings.master_key, secrets.token_bytes(32)
        member_id, brand_id = uuid.uuid4(), tenant_a.brand_id
        phone = keys.seal(k_old, b"+8613700137000", aad=phones.field_aad("phone", brand_id))
        profile = keys.seal(k_old, b'{"name":"Old Zhang"}', aad=phones.field_aad("profile", brand_id))
        await db.execute(
            "INSERT INTO members (id, brand_id, phone_sealed, phone_index, phone_last4, profile_sealed)"
            " VALUES (%s, %s, %s, %s, '7000', %s)",
            (member_id, brand_id, phone, secrets.token_bytes(32), profile),
        )
        reports = await run_reseal(settings, (k_new, k_old))
        assert figures_of(reports)["members.phone_sealed"] == (1, 1, 0, 0)
        assert figures_of(reports)["members.profile_sealed"] == (1, 1, 0, 0)
        cur = await db.execute("SELECT phone_sealed, profile_sealed FROM members WHERE id = %s", (member_id,))
        row = await cur.fetchone()
        assert row is not None
        assert (
            keys.unseal([k_new], bytes(row[0]), aad=phones.field_aad("phone", brand_id)) == b"+8613700137000"
        )
        assert keys.unseal([k_new], bytes(row[1]), aad=phones.field_aad("profile", brand_id)) == (
            b'{"name":"Old Zhang"}'
        )
        rotated = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=())
        async with AsyncTestClient(app=create_app(rotated)) as client:
            shown = await client.get(f"/v1/members/{member_id}", headers=tenant_a.headers(Role.BRAND_ADMIN))
        assert shown.status_code == 200, shown.text
        assert (shown.json()["phone"], shown.json()["name"]) == ("+8613700137000", "Old Zhang")


class TestServiceAfterRotation:
    async def test_the_service_works_with_the_new_key_alone(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """The point of the job: once it reports nothing left, the old key can go. An app configured with
        the new key and no old ones verifies codes (brand keys), shows coupons (coupon codes), opens
        members' profiles (data keys), the import's error file (rejected rows), signs in with TOTP,
        and reveals a draw's seed at its end (which must match the commitment)."""
        k_new = secrets.token_bytes(32)
        reports = await run_reseal(settings, (k_new, settings.master_key))
        assert all(r.to_reseal == r.resealed and r.unreadable == 0 for r in reports.values())
        rotated = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=())
        tenant = world.tenant
        async with AsyncTestClient(app=create_app(rotated)) as client:
            # A code printed before the rotation, never scanned: verified with the re-sealed MAC key.
            fresh = await client.post(
                "/v1/scans", json={"code": world.urls[5], "device_id": "device-after-1"}
            )
            assert fresh.status_code == 200, fresh.text
            assert fresh.json()["verdict"] == "genuine_first"

            # The member of an earlier scan, found again by its device: its coupon shows the same code.
            device, code = next(iter(world.coupon_codes.items()))
            again = await scan(client, world.urls[0], device)
            assert again["verdict"] == "genuine_repeat"
            client.cookies.clear()
            wallet = await client.get(
                "/v1/members/me/rewards", headers={"Cookie": f"oc_member={again['member_token']}"}
            )
            assert wallet.status_code == 200, wallet.text
            assert [c["code"] for c in wallet.json()["coupons"]] == [code]

            # Personal data behind the re-sealed data keys: the imported member, the enrolled one.
            admin = tenant.headers(Role.BRAND_ADMIN)
            imported = await client.get(f"/v1/members/{world.imported_member_id}", headers=admin)
            assert imported.status_code == 200, imported.text
            assert (imported.json()["phone"], imported.json()["name"]) == ("+8613800138001", "王小明")
            enrolled = await client.get(f"/v1/members/{world.enrolled_member_id}", headers=admin)
            assert enrolled.status_code == 200, enrolled.text
            assert enrolled.json()["phone"] == "+8613800138000"

            # The import's rejected rows, as the brand downloads them to correct and resend.
            errors = await client.get(f"/v1/member-imports/{world.import_id}/errors.csv", headers=admin)
            assert errors.status_code == 200, errors.text
            rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
            assert [(r[0], r[3]) for r in rows[1:]] == [("4", "12345"), ("5", "13900138005")]

            # The console user's second factor (the next step's code: each code signs in once, and the
            # current one may have confirmed the setup).
            next_code = pyotp.TOTP(world.totp_secret).at(time.time() + 30)
            signed_in = await sign_in(client, world.user_email, totp_code=next_code)
            assert signed_in.status_code == 200, signed_in.text
            client.cookies.clear()

            # The draw ends: its seed is revealed (unsealed) and still matches its published hash.
            ended = await step(client, tenant, world.draw_id, "end")
            assert ended.status_code == 200, ended.text
        cur = await db.execute(
            "SELECT seed_revealed, seed_hash FROM campaigns WHERE id = %s", (world.draw_id,)
        )
        row = await cur.fetchone()
        assert row is not None and row[0] is not None
        assert hashlib.sha256(bytes(row[0])).digest() == bytes(row[1])

    async def test_a_members_token_signed_under_the_old_key_is_replaced_by_its_next_scan(
        self, settings: Settings, world: World
    ) -> None:
        """Tokens keep reading under the old key while it is listed; the next scan answers with the same
        member's token under the new key, so that removing the old key later signs nobody out."""
        k_new = secrets.token_bytes(32)
        member_id = uuid.UUID(world.enrolled_member_id)
        ref = MemberRef(member_id, world.tenant.brand_id, enrolled=True)
        old_token = MemberTokens(settings.master_key).issue(ref)
        both = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=(settings.master_key,))
        async with AsyncTestClient(app=create_app(both)) as client:
            scanned = await client.post(
                "/v1/scans",
                json={"code": world.urls[6], "device_id": "device-token-1", "member_token": old_token},
            )
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["member"]["id"] == str(member_id)
        new_token = scanned.json()["member_token"]
        assert new_token != old_token
        assert MemberTokens(k_new).read(new_token).member_id == member_id

    async def test_members_are_still_found_by_phone(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """Staff search members by phone, and enrolment and imports merge by phone, all through the blind
        index: after the rotation an existing member's number must still find that member (not none,
        and never a second member for the same phone), before the job (the old key's index) and after
        it (the new key's alone)."""
        k_new = secrets.token_bytes(32)
        both = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=(settings.master_key,))
        async with AsyncTestClient(app=create_app(both)) as client:
            found = await client.post(
                "/v1/members:search",
                json={"phone": "13800138001"},
                headers=world.tenant.headers(Role.CUSTOMER_SERVICE),
            )
            assert [m["id"] for m in found.json()] == [world.imported_member_id], found.text
            # An import naming the phone again merges into its member instead of creating a second one.
            again = await client.post(
                "/v1/member-imports",
                content="phone,name\n13800138001,王小明\n".encode(),
                headers={**world.tenant.headers(Role.BRAND_ADMIN), "Content-Type": "text/csv"},
            )
            assert again.status_code == 200, again.text
            assert (again.json()["created"], again.json()["merged"]) == (0, 1), again.text
        await run_reseal(settings, (k_new, settings.master_key))
        rotated = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=())
        async with AsyncTestClient(app=create_app(rotated)) as client:
            found = await client.post(
                "/v1/members:search",
                json={"phone": "13800138001"},
                headers=world.tenant.headers(Role.CUSTOMER_SERVICE),
            )
        assert found.status_code == 200, found.text
        assert [m["id"] for m in found.json()] == [world.imported_member_id]

    async def test_erasure_during_the_rotation_purges_cells_kept_under_the_old_index(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], world: World
    ) -> None:
        """A rejected import row keeps its phone's cells under that phone's index, written under the old
        key; the phone enrols after the rotation (its member gets the new key's index). Erasing that
        member before the job has re-indexed the row must still purge the row's cells."""
        k_new = secrets.token_bytes(32)
        both = msgspec.structs.replace(settings, master_key=k_new, old_master_keys=(settings.master_key,))
        kept = "SELECT raw_sealed FROM member_import_rows WHERE import_id = %s AND phone_index IS NOT NULL"
        [(cells,)] = await (await db.execute(kept, (world.import_id,))).fetchall()
        assert cells is not None
        async with AsyncTestClient(app=create_app(both)) as client:
            joined = await client.post(
                "/v1/member-imports",
                content="phone,name\n13900138005,负分\n".encode(),
                headers={**world.tenant.headers(Role.BRAND_ADMIN), "Content-Type": "text/csv"},
            )
            assert joined.status_code == 200, joined.text
            assert joined.json()["created"] == 1, joined.text
            found = await client.post(
                "/v1/members:search",
                json={"phone": "13900138005"},
                headers=world.tenant.headers(Role.CUSTOMER_SERVICE),
            )
            [member] = found.json()
        async with db.transaction():
            await profiles.erase(
                db, phones.MemberVault(both.all_master_keys), world.tenant.brand_id, uuid.UUID(member["id"])
            )
        assert await (await db.execute(kept, (world.import_id,))).fetchall() == [(None,)]


# --- the command line --------------------------------------------------------------------------------


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """`onecode` configures the root logger to write to its (CliRunner's, soon closed) stderr: put the
    session's logging back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class TestCli:
    def test_keys_reseal_dry_run_then_run(
        self, settings: Settings, world: World, tmp_path: Any, keep_logging: None
    ) -> None:
        """`onecode keys reseal --dry-run` prints a line per column with what would move and writes
        nothing; without `--dry-run` it moves everything under ONECODE_MASTER_KEY."""
        k_new = secrets.token_bytes(32)
        env = {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "ONECODE_HOME": str(tmp_path / "cli-home"),
            "ONECODE_LOG_JSON": "false",
            "ONECODE_MASTER_KEY": _b64(k_new),
            "ONECODE_OLD_MASTER_KEYS": _b64(settings.master_key),
        }
        before = _read_blobs_sync(settings)
        runner = CliRunner()
        dry = runner.invoke(cli.main, ["keys", "reseal", "--dry-run"], env=env)
        assert dry.exit_code == 0, (dry.output, dry.exception)
        for column, n in SEEDED.items():
            lines = [line for line in dry.stdout.splitlines() if line.startswith(f"{column}:")]
            assert len(lines) == 1, (column, dry.stdout)
            numbers = re.findall(r"\d+", lines[0].removeprefix(f"{column}:"))
            assert str(n) in numbers, (column, lines[0])
        assert _read_blobs_sync(settings) == before

        done = runner.invoke(cli.main, ["keys", "reseal", "--batch-size", "1"], env=env)
        assert done.exit_code == 0, (done.output, done.exception)
        after = _read_blobs_sync(settings)
        assert all(keys.is_sealed_with(k_new, blob) for rows in after.values() for blob in rows.values())
        assert open_blobs(after, [k_new]) == open_blobs(before, [settings.master_key])


def _read_blobs_sync(settings: Settings) -> Blobs:
    """`read_blobs` for a synchronous test (the CLI runs its own event loop)."""
    found: Blobs = {}
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        for name, column in COLUMNS.items():
            rows = conn.execute(column.query).fetchall()
            found[name] = {tuple(row[:-1]): bytes(row[-1]) for row in rows}
    return found
