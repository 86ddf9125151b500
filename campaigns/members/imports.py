"""CSV import of an existing member list: phone, name, birthday, points balance (and gender, region).

- Text: UTF-8 (with or without a BOM) or GBK/GB18030, as Excel in China saves it; anything else is refused.
- Headers in English or Chinese (手机号, 姓名, 生日, 积分...); phones in any common format, birthdays as
  2024-05-01, 2024/5/1, 20240501 or 2024年5月1日.
- Each row is created (a new member, enrolled with its phone), merged (the phone's member exists: missing
  profile fields are filled, nothing is overwritten), a duplicate (its phone appeared on an earlier row)
  or rejected (with every fault of every field, listed in the error file: a corrected row must not fail
  again on a field nobody was told about).
- Idempotent and resumable: an import is keyed (by default the file's SHA-256) and every row's outcome is
  recorded in the same transaction as its effect, chunk by chunk; running it again skips the rows done.
  An opening balance is credited once per member, whichever import brings it.
- A dry run reads and checks everything and writes nothing.
- Rejected rows keep their original cells (sealed) for the error file for 30 days, then lose them. Such
  a row keeps its phone's blind index (and names the member that phone belongs to, if any), so that
  erasing the member with that phone, now or once the phone enrols, purges its cells at once
  (`erase_member` in sql/profiles.sql).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from antifraud.regions import is_region
from campaigns import ledger
from campaigns.members import profiles
from campaigns.members.errors import InvalidMemberInput, ObjectNotFound
from campaigns.members.phones import MemberVault, normalize_phone
from codegen import keys
from service.db import fetch_all, fetch_one
from service.ids import uuid7
from service.queries import load_queries
from service.spreadsheets import safe_cell

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "imports.sql")
CHUNK_ROWS = 5_000
MAX_ROWS = 1_000_000
MAX_POINTS = 100_000_000
REPORTED_ERRORS = 100

# Accepted header names (lower-cased, spaces stripped) for each field.
# Column names as lists are headed in English, simplified Chinese (mainland) and traditional (Big5 files).
HEADERS: dict[str, tuple[str, ...]] = {
    "phone": (
        *("phone", "mobile", "phone_number", "手机", "手机号", "手机号码", "电话"),
        *("手機", "手機號", "手機號碼", "電話"),
    ),
    "name": ("name", "姓名", "名字"),
    "birthday": ("birthday", "birth_date", "date_of_birth", "生日", "出生日期"),
    "points": ("points", "balance", "points_balance", "积分", "积分余额", "積分", "積分餘額"),
    "gender": ("gender", "sex", "性别", "性別"),
    "region": ("region", "province", "地区", "地區"),
}
GENDERS = {"male": "male", "m": "male", "男": "male", "female": "female", "f": "female", "女": "female"}
_BIRTHDAY = re.compile(r"^(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?$")

Outcome = Literal["created", "merged", "duplicate", "rejected"]


class RowError(msgspec.Struct, frozen=True):
    row: int
    field: str
    message: str


class ImportReport(msgspec.Struct, frozen=True):
    """What an import did (or, with dry_run, would do). Rows are numbered from 1, the header excluded."""

    id: uuid.UUID | None
    import_key: str
    dry_run: bool
    status: Literal["running", "done", "checked"]
    rows: int
    created: int
    merged: int
    duplicates: int
    rejected: int
    # Rows an earlier run of the same import already did, skipped by this one.
    skipped: int
    points_credited: int
    # Every fault of the first REPORTED_ERRORS rejected or duplicate rows (one entry per faulty field);
    # all the rows are in the error file.
    errors: list[RowError]


class ImportRecord(msgspec.Struct, frozen=True):
    id: uuid.UUID
    import_key: str
    filename: str | None
    status: Literal["running", "done"]
    rows_total: int
    created: int
    merged: int
    duplicates: int
    rejected: int
    points_credited: int
    created_by: str
    started_at: dt.datetime
    finished_at: dt.datetime | None


class _Row(msgspec.Struct, frozen=True):
    number: int
    cells: dict[str, str]
    phone: str | None = None
    index: bytes | None = None
    profile: profiles.Profile | None = None
    points: int = 0
    region: str | None = None
    # A rejected row's faults, one per faulty field; a duplicate's one (its phone).
    errors: tuple[RowError, ...] = ()
    duplicate: bool = False
    # A rejected or duplicate row's phone (blind index), when it has a valid one: whose cells it keeps.
    owner_index: bytes | None = None
    # The phone's index under each configured master key, the current one (`index`) first: members
    # written before a master-key rotation hold an old one until `onecode keys reseal` re-indexes them.
    aliases: list[bytes] = msgspec.field(default_factory=list)


class _Existing(msgspec.Struct, frozen=True):
    id: uuid.UUID
    phone_index: bytes


class _Number(msgspec.Struct, frozen=True):
    row_number: int


class _Points(msgspec.Struct, frozen=True):
    points: int


class _Rejected(msgspec.Struct, frozen=True):
    row_number: int
    outcome: str
    error: str | None
    raw_sealed: bytes | None


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not); else GB18030 (a superset of GBK: mainland Excel) or Big5 (Taiwan, Hong Kong).

    The two legacy encodings read much of each other's bytes without error, as other characters. Each
    reading is scored by the share of its encoding's everyday characters (GB2312's first level for
    GB18030, Big5's for Big5): a wrong reading gives rarer characters, the other script's, kana,
    symbols. Every character a GBK file's Big5 reading scores is one its own reading scores too, so a
    GBK file is never taken for Big5; GB18030 also wins a tie (a file of a few words may tie: UTF-8 is
    never ambiguous). The reading taken must be mostly Chinese characters of its encoding; a file that
    is not is refused whole, rather than imported as garbled names.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    readings: list[tuple[float, str, str]] = []
    for encoding, charset in (("gb18030", "gb2312"), ("big5", "big5")):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        readings.append((_share(text, _characters(charset, everyday=True)), charset, text))
    best = max(readings, key=lambda reading: reading[0], default=None)  # the first of equals: GB18030
    if best is None or _share(best[2], _characters(best[1], everyday=False)) < MIN_CHINESE_SHARE:
        raise InvalidMemberInput("file", "not UTF-8, GBK or Big5 text; save the CSV as UTF-8")
    return best[2]


# Of a legacy-encoded file's non-ASCII characters, at least this share must be Chinese characters of its
# encoding or punctuation for the reading to be believed.
MIN_CHINESE_SHARE = 0.5
SAMPLE_CHARS = 200_000


def _share(text: str, characters: frozenset[str]) -> float:
    # The first few thousand rows tell as well as a whole 64 MB file would.
    others = [c for c in text[:SAMPLE_CHARS] if ord(c) > 0x7F]  # noqa: PLR2004 - beyond ASCII
    if not others:
        return 1.0
    return sum(1 for c in others if c in characters or _is_punctuation(c)) / len(others)


@functools.cache
def _characters(charset: str, *, everyday: bool) -> frozenset[str]:
    """A charset's Chinese characters as its codec defines them: GB2312's 6,763 (the first level, 3,755
    everyday ones, ends at D7F9) or Big5's 13,060 (the first level, 5,401, ends at C67E)."""
    pairs: list[tuple[int, int]]
    if charset == "gb2312":
        pairs = list(itertools.product(range(0xB0, 0xD8 if everyday else 0xF8), range(0xA1, 0xFF)))
    else:
        trails = [*range(0x40, 0x7F), *range(0xA1, 0xFF)]
        pairs = list(itertools.product(range(0xA4, 0xC6 if everyday else 0xFA), trails))
        if everyday:
            pairs += [(0xC6, trail) for trail in range(0x40, 0x7F)]
    found: set[str] = set()
    for lead, trail in pairs:
        with contextlib.suppress(UnicodeDecodeError):
            found.add(bytes((lead, trail)).decode(charset))
    return frozenset(found)


# The punctuation Chinese text uses: CJK symbols and punctuation, fullwidth forms, general punctuation
# (dashes, quotes), the middle dot of names.
_PUNCTUATION_RANGES = ((0x3000, 0x303F), (0xFF00, 0xFFEF), (0x2010, 0x2027), (0xB7, 0xB7))


def _is_punctuation(c: str) -> bool:
    return any(low <= ord(c) <= high for low, high in _PUNCTUATION_RANGES)


def file_key(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def run(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    master_key: bytes,
    brand_id: uuid.UUID,
    data: bytes,
    *,
    actor: str,
    now: dt.datetime,
    dry_run: bool = False,
    import_key: str | None = None,
    filename: str | None = None,
) -> ImportReport:
    """Import (or check) a CSV file. Runs its own transactions (one per chunk): pass an autocommit
    connection, so that what is done stays done if the run stops halfway."""
    try:
        rows = list(_read(decode(data), vault, brand_id, today=now.date()))
    except csv.Error as exc:
        raise InvalidMemberInput("file", f"not a readable CSV file: {exc}") from None
    key = import_key or file_key(data)
    counts: dict[str, int] = {"created": 0, "merged": 0, "duplicates": 0, "rejected": 0, "skipped": 0}
    errors: list[RowError] = []
    seen: dict[bytes, int] = {}
    record: ImportRecord | None = None
    if not dry_run:
        record = await fetch_one(
            conn,
            QUERIES["start_import"],
            {"brand_id": brand_id, "import_key": key, "filename": filename, "actor": actor},
            ImportRecord,
        )
        assert record is not None
    points = 0
    reported = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = _mark_duplicates(rows[start : start + CHUNK_ROWS], seen)
        for row in chunk:
            if row.errors and reported < REPORTED_ERRORS:
                errors.extend(row.errors)
                reported += 1
        if dry_run:
            existing = await _existing(conn, brand_id, chunk)
            for row in chunk:
                outcome = _outcome(row, existing)
                counts[_COUNTER[outcome]] += 1
            continue
        assert record is not None
        async with conn.transaction():
            points += await _import_chunk(
                conn, vault, master_key, brand_id, record.id, chunk, counts, actor, now
            )
    if dry_run:
        return ImportReport(
            id=None,
            import_key=key,
            dry_run=True,
            status="checked",
            rows=len(rows),
            points_credited=0,
            errors=errors,
            **counts,
        )
    assert record is not None
    finished = await fetch_one(conn, QUERIES["finish_import"], {"import_id": record.id}, ImportRecord)
    assert finished is not None
    return ImportReport(
        id=record.id,
        import_key=key,
        dry_run=False,
        status=finished.status,
        rows=len(rows),
        points_credited=points,
        errors=errors,
        **counts,
    )


async def get(conn: AsyncConnection[Any], brand_id: uuid.UUID, import_id: uuid.UUID) -> ImportRecord:
    found = await fetch_one(
        conn, QUERIES["get_import"], {"brand_id": brand_id, "import_id": import_id}, ImportRecord
    )
    if found is None:
        raise ObjectNotFound("import", import_id)
    return found


async def error_file(
    conn: AsyncConnection[Any], master_keys: tuple[bytes, ...], brand_id: uuid.UUID, import_id: uuid.UUID
) -> bytes:
    """The rejected and duplicate rows as CSV: the original cells and why, to fix and import again."""
    await get(conn, brand_id, import_id)
    rows = await fetch_all(conn, QUERIES["rejected_rows"], {"import_id": import_id}, _Rejected)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "outcome", "error", *HEADERS])
    for r in rows:
        cells: dict[str, str] = {}
        if r.raw_sealed is not None:
            raw = keys.unseal(master_keys, r.raw_sealed, aad=raw_aad(import_id, r.row_number))
            cells = msgspec.json.decode(raw, type=dict[str, str])
        # The cells came from a file anyone could have written: no formula reaches a spreadsheet.
        writer.writerow(
            [
                r.row_number,
                r.outcome,
                safe_cell(r.error or ""),
                *(safe_cell(cells.get(f, "")) for f in HEADERS),
            ]
        )
    # A BOM, so that Excel opens Chinese text as UTF-8.
    return ("\ufeff" + out.getvalue()).encode()


_COUNTER: dict[Outcome, str] = {
    "created": "created",
    "merged": "merged",
    "duplicate": "duplicates",
    "rejected": "rejected",
}


async def purge_rejected_cells(conn: AsyncConnection[Any], *, now: dt.datetime) -> None:
    """Forget the original cells of rejected rows 30 days after their import (run daily)."""
    await conn.execute(QUERIES["purge_rejected_cells"], {"now": now})


def _read(text: str, vault: MemberVault, brand_id: uuid.UUID, *, today: dt.date) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise InvalidMemberInput("file", "the file is empty")
    columns = _columns(header)
    for number, cells in enumerate(reader, start=1):
        if number > MAX_ROWS:
            raise InvalidMemberInput("file", f"more than {MAX_ROWS} rows; split the file")
        if not any(c.strip() for c in cells):
            continue
        named = {field: cells[i].strip() for field, i in columns.items() if i < len(cells)}
        yield _parse(number, named, vault, brand_id, today)


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower().replace(" ", "_") for h in header]
    columns: dict[str, int] = {}
    for field, aliases in HEADERS.items():
        for i, name in enumerate(names):
            if name in aliases:
                columns[field] = i
                break
    if "phone" not in columns:
        raise InvalidMemberInput(
            "file", f"no phone column; the header must name one of {', '.join(HEADERS['phone'])}"
        )
    return columns


def _parse(
    number: int, cells: dict[str, str], vault: MemberVault, brand_id: uuid.UUID, today: dt.date
) -> _Row:
    """Every field is checked, a fault or not in another: the row's errors name them all at once."""
    faults: list[RowError] = []
    phone = _checked(faults, number, normalize_phone, cells.get("phone", ""))
    name = _checked(faults, number, _name, cells.get("name"))
    birthday = _checked(faults, number, lambda text: _birthday(text, today), cells.get("birthday"))
    points = _checked(faults, number, _points, cells.get("points"))
    gender = _checked(faults, number, _gender, cells.get("gender"))
    region = _checked(faults, number, _region, cells.get("region"))
    aliases = [] if phone is None else vault.blind_indexes(brand_id, phone)
    index = aliases[0] if aliases else None
    if faults or phone is None or points is None:
        return _Row(number, cells, errors=tuple(faults), owner_index=index, aliases=aliases)
    profile = profiles.Profile(name=name, gender=gender, birthday=birthday)
    return _Row(
        number,
        cells,
        phone=phone,
        index=index,
        aliases=aliases,
        profile=profile if profile != profiles.Profile() else None,
        points=points,
        region=region,
    )


_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _checked(faults: list[RowError], number: int, parse: Callable[[_In], _Out], text: _In) -> _Out | None:
    """The parsed cell, or None with its fault added to `faults`."""
    try:
        return parse(text)
    except InvalidMemberInput as exc:
        faults.append(RowError(number, exc.field or "row", str(exc)))
        return None


def _name(text: str | None) -> str | None:
    if text and len(text) > 64:  # noqa: PLR2004 - the profile's limit
        raise InvalidMemberInput("name", "longer than 64 characters")
    return text or None


def _gender(text: str | None) -> str | None:
    if not text:
        return None
    gender = GENDERS.get(text.lower())
    if gender is None:
        raise InvalidMemberInput("gender", "male/female, m/f or 男/女")
    return gender


def _birthday(text: str | None, today: dt.date) -> dt.date | None:
    if not text:
        return None
    match = _BIRTHDAY.match(text)
    try:
        birthday = None if match is None else dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        birthday = None
    if birthday is None:
        raise InvalidMemberInput("birthday", "not a date (2024-05-01, 2024/5/1, 20240501 or 2024年5月1日)")
    profiles.check_profile(profiles.Profile(birthday=birthday), today)  # not in the future, not too old
    return birthday


def _points(text: str | None) -> int:
    digits = (text or "0").replace(",", "")
    if not digits.isascii() or not digits.isdecimal() or int(digits) > MAX_POINTS:
        raise InvalidMemberInput("points", f"a whole number from 0 to {MAX_POINTS}")
    return int(digits)


def _region(text: str | None) -> str | None:
    # A spreadsheet's "cn-zj" is meant as CN-ZJ; stored as scans record regions.
    region = text.upper() if text else None
    if region and not is_region(region):
        raise InvalidMemberInput("region", "not an ISO 3166 code such as CN-ZJ")
    return region


def _mark_duplicates(chunk: list[_Row], seen: dict[bytes, int]) -> list[_Row]:
    marked = []
    for row in chunk:
        first = row.number if row.index is None else seen.setdefault(row.index, row.number)
        if first == row.number:
            marked.append(row)
        else:
            error = RowError(row.number, "phone", f"the same phone as row {first}")
            duplicate = msgspec.structs.replace(
                row, index=None, errors=(error,), duplicate=True, owner_index=row.index
            )
            marked.append(duplicate)
    return marked


def _outcome(row: _Row, existing: dict[bytes, _Existing]) -> Outcome:
    if row.errors:
        return "duplicate" if row.duplicate else "rejected"
    assert row.index is not None
    return "merged" if row.index in existing else "created"


async def _existing(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, chunk: list[_Row]
) -> dict[bytes, _Existing]:
    found = await _members_of(conn, brand_id, [(r.index, r.aliases) for r in chunk if r.index is not None])
    return {e.phone_index: e for e in found}


async def _members_of(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, phones: list[tuple[bytes, list[bytes]]]
) -> list[_Existing]:
    """The members holding these phones, each given as (current index, its index under every key);
    the members come back under the current index whichever index they hold."""
    pairs = [(index, alias) for index, aliases in phones for alias in aliases]
    return await fetch_all(
        conn,
        QUERIES["existing_members"],
        {"brand_id": brand_id, "indexes": [i for i, _ in pairs], "aliases": [a for _, a in pairs]},
        _Existing,
    )


async def _import_chunk(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    master_key: bytes,
    brand_id: uuid.UUID,
    import_id: uuid.UUID,
    chunk: list[_Row],
    counts: dict[str, int],
    actor: str,
    now: dt.datetime,
) -> int:
    """One transaction: the chunk's members, balances and row outcomes commit together or not at all."""
    done = {
        d.row_number
        for d in await fetch_all(
            conn,
            QUERIES["done_rows"],
            {"import_id": import_id, "first": chunk[0].number, "last": chunk[-1].number},
            _Number,
        )
    }
    counts["skipped"] += len(done)
    todo = [r for r in chunk if r.number not in done]
    if not todo:
        return 0
    existing = await _existing(conn, brand_id, todo)
    new = [r for r in todo if not r.errors and r.index not in existing]
    inserted = await _insert_new(conn, vault, brand_id, new, now)
    member_of = dict(inserted)
    # Phones enrolled by a scan since the lookup: merged like the others.
    raced = [r for r in new if r.number not in inserted]
    if raced:
        existing |= await _existing(conn, brand_id, raced)
    outcomes: dict[int, Outcome] = {}
    for row in todo:
        if row.errors:
            outcomes[row.number] = _outcome(row, existing)
        elif row.number in inserted:
            outcomes[row.number] = "created"
        else:
            assert row.index is not None
            target = existing[row.index]
            await _fill(conn, vault, brand_id, target, row, now)
            member_of[row.number] = target.id
            outcomes[row.number] = "merged"
    credit = [(member_of[r.number], r.points) for r in todo if r.points > 0 and r.number in member_of]
    owner_of = await _owners(conn, brand_id, todo)
    points = await fetch_one(
        conn,
        QUERIES["credit_opening_balances"],
        {
            "brand_id": brand_id,
            "import_id": import_id,
            "member_ids": [m for m, _ in credit],
            "points": [p for _, p in credit],
            "now": now,
            "expires_at": ledger.default_expiry(now),
            "actor": actor,
        },
        _Points,
    )
    assert points is not None
    await conn.execute(
        QUERIES["record_rows"],
        {
            "import_id": import_id,
            "row_numbers": [r.number for r in todo],
            "outcomes": [outcomes[r.number] for r in todo],
            "member_ids": [member_of.get(r.number, owner_of.get(r.number)) for r in todo],
            "phone_indexes": [r.owner_index if r.errors else None for r in todo],
            "errors": [_error_text(r.errors) if r.errors else None for r in todo],
            "raw_sealed": [
                None
                if not r.errors
                else keys.seal(master_key, msgspec.json.encode(r.cells), aad=raw_aad(import_id, r.number))
                for r in todo
            ],
        },
    )
    tally = {outcome: sum(1 for o in outcomes.values() if o == outcome) for outcome in _COUNTER}
    for outcome, n in tally.items():
        counts[_COUNTER[outcome]] += n
    await conn.execute(
        QUERIES["count_import"],
        {
            "import_id": import_id,
            "rows": len(todo),
            "created": tally["created"],
            "merged": tally["merged"],
            "duplicates": tally["duplicate"],
            "rejected": tally["rejected"],
            "points": points.points,
        },
    )
    return points.points


def _error_text(errors: tuple[RowError, ...]) -> str:
    """A row's faults as the error file's one cell: `birthday: ...; points: ...`."""
    return "; ".join(f"{e.field}: {e.message}" for e in errors)


async def _owners(conn: AsyncConnection[Any], brand_id: uuid.UUID, todo: list[_Row]) -> dict[int, uuid.UUID]:
    """{row number: member} for the rejected and duplicate rows whose phone is a member's (after this
    chunk's own members were created): the member whose erasure purges the cells those rows keep."""
    kept = {r.number: r.owner_index for r in todo if r.owner_index is not None}
    if not kept:
        return {}
    found = await _members_of(
        conn, brand_id, [(r.owner_index, r.aliases) for r in todo if r.owner_index is not None]
    )
    member_of = {e.phone_index: e.id for e in found}
    return {number: member_of[index] for number, index in kept.items() if index in member_of}


async def _insert_new(
    conn: AsyncConnection[Any], vault: MemberVault, brand_id: uuid.UUID, new: list[_Row], now: dt.datetime
) -> dict[int, uuid.UUID]:
    """Create the members of these rows; returns {row number: member id} for those created."""
    if not new:
        return {}
    ids, sealed_phones, wrapped, sealed_profiles = [], [], [], []
    for row in new:
        assert row.phone is not None
        member_id = uuid7()  # time-ordered: an import appends to the member indexes
        data_key = vault.new_data_key()
        ids.append(member_id)
        wrapped.append(vault.wrap(member_id, data_key))
        sealed_phones.append(vault.seal(data_key, brand_id, "phone", row.phone.encode()))
        sealed_profiles.append(
            None if row.profile is None else profiles.seal_profile(vault, data_key, brand_id, row.profile)
        )
    cur = await conn.execute(
        QUERIES["insert_members"],
        {
            "brand_id": brand_id,
            "now": now,
            "ids": ids,
            "phone_sealed": sealed_phones,
            "phone_index": [r.index for r in new],
            "phone_last4": [(r.phone or "")[-4:] for r in new],
            "profile_sealed": sealed_profiles,
            "data_key_sealed": wrapped,
            "region": [r.region for r in new],
            "birthday_md": [profiles.birthday_mmdd(r.profile.birthday if r.profile else None) for r in new],
        },
    )
    created = {row[0] for row in await cur.fetchall()}
    return {row.number: member_id for row, member_id in zip(new, ids, strict=True) if member_id in created}


async def _fill(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    target: _Existing,
    row: _Row,
    now: dt.datetime,
) -> None:
    """Give an existing member the profile fields it lacks; what it has stays. The member's row is
    locked first, so that an enrolment or a staff edit at the same moment is not lost."""
    if row.profile is None and row.region is None:
        return
    sealed = None
    if row.profile is not None:
        key = await profiles.data_key(conn, vault, brand_id, target.id)
        current = await profiles.current_profile(conn, vault, key, brand_id, target.id)
        filled = profiles.Profile(
            name=current.name or row.profile.name,
            gender=current.gender or row.profile.gender,
            birthday=current.birthday or row.profile.birthday,
        )
        if filled != current:
            sealed = profiles.seal_profile(vault, key, brand_id, filled)
        if filled.birthday != current.birthday:
            await profiles.set_birthday_md(conn, brand_id, target.id, filled.birthday)
    await conn.execute(
        QUERIES["fill_profile"],
        {
            "brand_id": brand_id,
            "member_id": target.id,
            "profile_sealed": sealed,
            "region": row.region,
            "now": now,
        },
    )


def raw_aad(import_id: uuid.UUID, row_number: int) -> bytes:
    return f"import-row:{import_id}:{row_number}".encode()
