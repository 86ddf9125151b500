"""Master-key rotation, last step: every value under an older master key, sealed again under the current one.

Rotation (README, Operations): make the new key `ONECODE_MASTER_KEY` and list the old one in
`ONECODE_OLD_MASTER_KEYS` on every worker; new values are then sealed under the new key and old ones
still open. `onecode keys reseal` then moves the old values over (same plaintext, same associated
data), a page at a time in short transactions while the service runs; once it reports nothing left
under another key, the old key can leave the configuration.

A sealed value names its master key by fingerprint (codegen/keys.py), so a value already under the
current key is counted, not rewritten, and a second run writes nothing. A value under a key that is
not configured, or that fails to open, is reported as unreadable and left as it is: nothing is lost.
Members' personal fields are sealed under each member's own data key (itself sealed under the master
key, and moved here); only those of members from before data keys (migration 0014) are under the
master key itself, and only those are moved.

Phones' blind indexes are keyed by the master key too (phones.MemberVault): lookups try every
configured key's index meanwhile, and this job writes each index again under the current key, from
the phone itself (members) or the cells a rejected import row keeps. A member whose phone another
member already holds under the current index (enrolled twice during the rotation) is left as it is
and reported as a conflict: merge the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import psycopg

from campaigns.coupons import code_aad
from campaigns.draws import seed_aad
from campaigns.members.errors import InvalidMemberInput
from campaigns.members.imports import raw_aad
from campaigns.members.phones import MemberVault, field_aad, member_key_aad, normalize_phone
from campaigns.members.webhooks import secret_aad
from campaigns.rewards import claim_aad
from codegen import keys
from codegen.errors import InvalidKey, UnsealError
from codegen.keyring import ed25519_aad, mac_aad
from service.queries import load_queries
from service.users import totp_aad

QUERIES = load_queries("service.sql", "reseal.sql")
PAGE_ROWS = 500


class SealedColumn(msgspec.Struct, frozen=True):
    """A column holding sealed values: its `page_`/`put_` queries and the associated data of a row."""

    name: str  # "table.column", as reported
    queries: str  # the suffix of its queries in reseal.sql
    key_width: int  # columns of the primary key, first in each row of the page
    first_key: tuple[Any, ...]  # lower than any key: where the first page starts
    aad: Callable[[tuple[Any, ...]], bytes]  # from the row (key columns, then any others, then the value)
    # False: the column also holds values sealed under members' data keys, which are not ours to move.
    master_only: bool = True


_NO_UUID = uuid.UUID(int=0)

SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(
        "brand_keys.sealed_mac_key", "brand_keys_mac", 2, (_NO_UUID, -1), lambda r: mac_aad(r[0], r[1])
    ),
    SealedColumn(
        "brand_keys.sealed_ed25519",
        "brand_keys_ed25519",
        2,
        (_NO_UUID, -1),
        lambda r: ed25519_aad(r[0], r[1]),
    ),
    SealedColumn("campaigns.seed_sealed", "campaigns_seed", 1, (_NO_UUID,), lambda r: seed_aad(r[1])),
    SealedColumn(
        "console_users.totp_secret_sealed", "console_users_totp", 1, (_NO_UUID,), lambda r: totp_aad(r[0])
    ),
    SealedColumn("coupons.code_sealed", "coupons_code", 1, (_NO_UUID,), lambda r: code_aad(r[1])),
    SealedColumn(
        "member_import_rows.raw_sealed",
        "member_import_rows_raw",
        2,
        (_NO_UUID, -1),
        lambda r: raw_aad(r[0], r[1]),
    ),
    SealedColumn(
        "members.data_key_sealed", "members_data_key", 1, (_NO_UUID,), lambda r: member_key_aad(r[0])
    ),
    SealedColumn(
        "members.phone_sealed",
        "members_phone",
        1,
        (_NO_UUID,),
        lambda r: field_aad("phone", r[1]),
        master_only=False,
    ),
    SealedColumn(
        "members.profile_sealed",
        "members_profile",
        1,
        (_NO_UUID,),
        lambda r: field_aad("profile", r[1]),
        master_only=False,
    ),
    SealedColumn(
        "member_notes.body_sealed",
        "member_notes_body",
        1,
        (-1,),
        lambda r: field_aad("note", r[1]),
        master_only=False,
    ),
    SealedColumn(
        "prize_claims.address_sealed",
        "prize_claims_address",
        2,
        (_NO_UUID, _NO_UUID),
        lambda r: claim_aad(r[0], r[1]),
    ),
    SealedColumn("webhooks.secret_sealed", "webhooks_secret", 1, (_NO_UUID,), lambda r: secret_aad(r[0])),
)


class ColumnReport(msgspec.Struct, frozen=True):
    """What one run found in one column."""

    column: str
    resealed: int  # moved to the current key by this run (0 in a dry run)
    to_reseal: int  # found under an older configured key
    current: int  # already under the current key
    unreadable: int  # under a key not configured, or failing to open: left as it is
    conflicts: int = 0  # blind indexes only: another member holds the phone under the current index


async def reseal_all(
    conn: psycopg.AsyncConnection[Any],
    master_keys: Sequence[bytes],
    *,
    batch_size: int = PAGE_ROWS,
    dry_run: bool = False,
) -> list[ColumnReport]:
    """Re-seal under `master_keys[0]` every value sealed under another of `master_keys`, column by column."""
    if not master_keys:
        raise InvalidKey("no master key configured")
    reports = [
        await _reseal_column(conn, column, master_keys, batch_size, dry_run) for column in SEALED_COLUMNS
    ]
    vault = MemberVault(master_keys)

    def member_phone(row: tuple[Any, ...]) -> bytes:
        member_id, _, brand_id, phone_sealed, data_key_sealed = row
        data_key = None if data_key_sealed is None else vault.unwrap(member_id, bytes(data_key_sealed))
        return vault.blind_index(
            brand_id, vault.unseal(data_key, brand_id, "phone", bytes(phone_sealed)).decode()
        )

    def import_row_phone(row: tuple[Any, ...]) -> bytes:
        import_id, row_number, _, brand_id, raw_sealed = row
        cells = msgspec.json.decode(
            keys.unseal(master_keys, bytes(raw_sealed), aad=raw_aad(import_id, row_number)),
            type=dict[str, str],
        )
        return vault.blind_index(brand_id, normalize_phone(cells.get("phone", "")))

    reports.append(
        await _reindex(
            conn, "members.phone_index", "members_phone_index", 1, member_phone, batch_size, dry_run
        )
    )
    reports.append(
        await _reindex(
            conn,
            "member_import_rows.phone_index",
            "member_import_rows_phone_index",
            2,
            import_row_phone,
            batch_size,
            dry_run,
        )
    )
    return reports


async def _reindex(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    queries: str,
    key_width: int,
    current_index: Callable[[tuple[Any, ...]], bytes],
    batch_size: int,
    dry_run: bool,
) -> ColumnReport:
    """Write again under the current key each blind index (the column after the key) that differs from
    the phone's current index."""
    after: tuple[Any, ...] = (_NO_UUID, -1)[:key_width]
    reindexed = to_reindex = already = unreadable = conflicts = 0
    while True:
        async with conn.transaction():
            page = await _page(conn, queries, after, batch_size)
            moves: list[tuple[tuple[Any, ...], bytes, bytes]] = []
            for row in page:
                stored = bytes(row[key_width])
                try:
                    index = current_index(tuple(row))
                except (UnsealError, InvalidMemberInput):
                    unreadable += 1
                    continue
                if index == stored:
                    already += 1
                else:
                    to_reindex += 1
                    moves.append((tuple(row[:key_width]), stored, index))
            if moves and not dry_run:
                written, clashed = await _put_indexes(conn, queries, key_width, moves)
                reindexed += written
                conflicts += clashed
        if len(page) < batch_size:
            break
        after = tuple(page[-1][:key_width])
    return ColumnReport(name, reindexed, to_reindex, already, unreadable, conflicts)


async def _page(
    conn: psycopg.AsyncConnection[Any], queries: str, after: tuple[Any, ...], limit: int
) -> list[tuple[Any, ...]]:
    """The next `limit` rows of a column's `page_` query, after the key `after`."""
    params = {**{f"after_{n}": value for n, value in enumerate(after)}, "limit": limit}
    return await (await conn.execute(QUERIES[f"page_{queries}"], params)).fetchall()


async def _put_indexes(
    conn: psycopg.AsyncConnection[Any],
    queries: str,
    key_width: int,
    moves: list[tuple[tuple[Any, ...], bytes, bytes]],
) -> tuple[int, int]:
    """Write a page of indexes; where one clashes with another member's (the phone enrolled twice), one
    by one, leaving the clashing ones. Returns (written, clashed)."""
    query = QUERIES[f"put_{queries}"]
    try:
        async with conn.transaction():
            return (await conn.execute(query, _put_params(key_width, moves))).rowcount, 0
    except psycopg.errors.UniqueViolation:
        pass
    written = clashed = 0
    for move in moves:
        try:
            async with conn.transaction():
                written += (await conn.execute(query, _put_params(key_width, [move]))).rowcount
        except psycopg.errors.UniqueViolation:
            clashed += 1
    return written, clashed


def _put_params(key_width: int, moves: list[tuple[tuple[Any, ...], bytes, bytes]]) -> dict[str, Any]:
    params: dict[str, Any] = {f"key_{n}": [key[n] for key, _, _ in moves] for n in range(key_width)}
    params["old"] = [old for _, old, _ in moves]
    params["new"] = [new for _, _, new in moves]
    return params


async def _reseal_column(
    conn: psycopg.AsyncConnection[Any],
    column: SealedColumn,
    master_keys: Sequence[bytes],
    batch_size: int,
    dry_run: bool,
) -> ColumnReport:
    current = keys.master_key_fingerprint(master_keys[0])
    older = {keys.master_key_fingerprint(key) for key in master_keys[1:]} - {current}
    after = column.first_key
    resealed = to_reseal = already = unreadable = 0
    while True:
        async with conn.transaction():
            page = await _page(conn, column.queries, after, batch_size)
            moves: list[tuple[tuple[Any, ...], bytes, bytes]] = []
            for row in page:
                sealed = bytes(row[-1])
                fingerprint = keys.sealed_fingerprint(sealed)
                if fingerprint == current:
                    already += 1
                elif fingerprint in older:
                    try:
                        moved = keys.reseal(master_keys, sealed, aad=column.aad(tuple(row)))
                    except UnsealError:
                        unreadable += 1
                        continue
                    to_reseal += 1
                    moves.append((tuple(row[: column.key_width]), sealed, moved))
                elif column.master_only:
                    unreadable += 1
                # else: under a member's own data key, not the master key's to move
            if moves and not dry_run:
                cursor = await conn.execute(
                    QUERIES[f"put_{column.queries}"], _put_params(column.key_width, moves)
                )
                resealed += cursor.rowcount
        if len(page) < batch_size:
            break
        after = tuple(page[-1][: column.key_width])
    return ColumnReport(column.name, resealed, to_reseal, already, unreadable)
