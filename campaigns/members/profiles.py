"""Member profiles for staff and for the member: sealed personal fields, masking by role, notes, erasure.

Personal fields (phone, name, gender, birthday, service notes) are sealed under the member's own data
key (see `MemberVault`). Region, custom attributes and statistics are plain: they are what segments and
reports filter on, and say nothing about a person on their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import msgspec

from antifraud.regions import is_region
from campaigns import coupons, ledger
from campaigns.members.errors import (
    AttributeInUse,
    InvalidMemberInput,
    LimitReached,
    MemberErased,
    MemberNotFound,
)
from campaigns.members.phones import MemberVault, mask, normalize_phone
from campaigns.rewards import claim_aad
from codegen import keys
from codegen.errors import UnsealError
from service import audit
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "profiles.sql")
EXPORT_SCAN_LIMIT = 10_000
MAX_ATTRIBUTES = 100
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # custom fields shown on every member's profile
MAX_AGE_YEARS = 130

Lifecycle = Literal["new", "active", "dormant", "churned"]
AttributeType = Literal["text", "number", "boolean", "date", "choice"]
AttributeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# A name on one line: no control characters (a NUL, refused by PostgreSQL in every clear-text column,
# would pass here unseen, sealed inside the profile).
PersonName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class Profile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The personal fields, sealed together as one JSON document."""

    name: PersonName | None = None
    gender: Annotated[str, msgspec.Meta(pattern="^(female|male|other)$")] | None = None
    birthday: dt.date | None = None


class ProfilePatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A staff edit: only the fields given change; an attribute set to null is removed."""

    name: PersonName | None = None
    gender: Annotated[str, msgspec.Meta(pattern="^(female|male|other)$")] | None = None
    birthday: dt.date | None = None
    region: Annotated[str, msgspec.Meta(min_length=2, max_length=10)] | None = None
    attributes: dict[AttributeName, Any] | None = None


class AttributeDef(msgspec.Struct, frozen=True):
    name: str
    type: AttributeType
    choices: list[str] | None = None


class AttributeDefIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Define (or retype) a custom field; defining an existing name again replaces its type."""

    name: AttributeName
    type: AttributeType
    choices: (
        Annotated[
            list[Annotated[str, msgspec.Meta(min_length=1, max_length=40)]],
            msgspec.Meta(min_length=1, max_length=50),
        ]
        | None
    ) = None


class Tier(msgspec.Struct, frozen=True):
    rank: int
    name: str | None


class MemberProfile(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    enrolled: bool
    # In full only for roles that may see it (and then the read is audited); masked otherwise.
    phone: str | None
    phone_revealed: bool
    name: str | None
    gender: str | None
    birthday: dt.date | None
    region: str | None
    attributes: dict[str, Any]
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None
    acquired_product_id: uuid.UUID | None
    acquired_batch_id: uuid.UUID | None
    acquired_campaign_id: uuid.UUID | None
    merged_into: uuid.UUID | None
    created_at: dt.datetime
    enrolled_at: dt.datetime | None
    updated_at: dt.datetime | None
    erased_at: dt.datetime | None
    tier: Tier
    lifecycle: Lifecycle
    scans: int
    last_scan_at: dt.datetime | None
    points_balance: int
    points_earned: int
    tags: list[str]


TimelineKind = Literal["scan", "points", "coupon", "draw", "tier", "note"]
TIMELINE_KINDS: frozenset[str] = frozenset(get_args(TimelineKind))


class TimelineEntry(msgspec.Struct, frozen=True):
    kind: TimelineKind
    at: dt.datetime
    ref: str
    detail: dict[str, Any]


class Note(msgspec.Struct, frozen=True):
    id: int
    created_at: dt.datetime


class _MemberRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    phone_sealed: bytes | None
    phone_last4: str | None
    profile_sealed: bytes | None
    data_key_sealed: bytes | None
    region: str | None
    attributes: dict[str, Any]
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None
    acquired_product_id: uuid.UUID | None
    acquired_batch_id: uuid.UUID | None
    acquired_campaign_id: uuid.UUID | None
    merged_into: uuid.UUID | None
    created_at: dt.datetime
    enrolled_at: dt.datetime | None
    updated_at: dt.datetime | None
    erased_at: dt.datetime | None
    scans: int
    last_scan_at: dt.datetime | None
    points_earned: int
    tier_rank: int
    tier_name: str | None
    lifecycle: Lifecycle
    points_balance: int
    tags: list[str]


class _KeyRow(msgspec.Struct, frozen=True):
    data_key_sealed: bytes | None
    erased_at: dt.datetime | None


class _Id(msgspec.Struct, frozen=True):
    id: uuid.UUID


class _NoteBody(msgspec.Struct, frozen=True):
    id: int
    body_sealed: bytes


async def data_key(
    conn: AsyncConnection[Any], vault: MemberVault, brand_id: uuid.UUID, member_id: uuid.UUID
) -> bytes:
    """The member's data key, created on first use; the row stays locked until the caller commits."""
    row = await fetch_one(
        conn, QUERIES["lock_member_key"], {"brand_id": brand_id, "member_id": member_id}, _KeyRow
    )
    if row is None:
        raise MemberNotFound(member_id)
    if row.erased_at is not None:
        raise MemberErased(member_id)
    if row.data_key_sealed is not None:
        return vault.unwrap(member_id, row.data_key_sealed)
    key = vault.new_data_key()
    await conn.execute(
        QUERIES["set_member_key"],
        {"brand_id": brand_id, "member_id": member_id, "data_key_sealed": vault.wrap(member_id, key)},
    )
    return key


class _ProfileSealed(msgspec.Struct, frozen=True):
    profile_sealed: bytes | None


async def current_profile(
    conn: AsyncConnection[Any], vault: MemberVault, key: bytes, brand_id: uuid.UUID, member_id: uuid.UUID
) -> Profile:
    """The member's personal fields as stored now; call after `data_key` (which locks the row)."""
    found = await fetch_one(
        conn, QUERIES["profile_sealed"], {"brand_id": brand_id, "member_id": member_id}, _ProfileSealed
    )
    if found is None or found.profile_sealed is None:
        return Profile()
    return msgspec.json.decode(vault.unseal(key, brand_id, "profile", found.profile_sealed), type=Profile)


def check_profile(profile: Profile | ProfilePatch, today: dt.date) -> None:
    if profile.birthday is not None:
        if profile.birthday > today:
            raise InvalidMemberInput("birthday", "a birthday cannot be in the future")
        if profile.birthday.year < today.year - MAX_AGE_YEARS:
            raise InvalidMemberInput("birthday", f"more than {MAX_AGE_YEARS} years ago")


def seal_profile(vault: MemberVault, key: bytes, brand_id: uuid.UUID, profile: Profile) -> bytes:
    return vault.seal(key, brand_id, "profile", msgspec.json.encode(profile))


async def load_profile(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    reveal: bool,
) -> MemberProfile:
    """The member as staff see it: phone and name in full only when `reveal`."""
    row = await _member_row(conn, brand_id, member_id)
    key = None if row.data_key_sealed is None else vault.unwrap(member_id, row.data_key_sealed)
    profile = _open_profile(vault, key, row)
    phone = None
    if row.phone_sealed is not None:
        clear = vault.unseal(key, brand_id, "phone", row.phone_sealed).decode()
        phone = clear if reveal else mask(clear)
    name = profile.name if reveal or profile.name is None else _mask_name(profile.name)
    return MemberProfile(
        id=row.id,
        brand_id=row.brand_id,
        enrolled=row.enrolled_at is not None and row.erased_at is None,
        phone=phone,
        phone_revealed=reveal and phone is not None,
        name=name,
        gender=profile.gender,
        birthday=profile.birthday if reveal else None,
        region=row.region,
        attributes=row.attributes,
        consent_marketing_at=row.consent_marketing_at,
        consent_location_at=row.consent_location_at,
        acquired_product_id=row.acquired_product_id,
        acquired_batch_id=row.acquired_batch_id,
        acquired_campaign_id=row.acquired_campaign_id,
        merged_into=row.merged_into,
        created_at=row.created_at,
        enrolled_at=row.enrolled_at,
        updated_at=row.updated_at,
        erased_at=row.erased_at,
        tier=Tier(row.tier_rank, row.tier_name),
        lifecycle=row.lifecycle,
        scans=row.scans,
        last_scan_at=row.last_scan_at,
        points_balance=row.points_balance,
        points_earned=row.points_earned,
        tags=row.tags,
    )


async def update_profile(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    patch: ProfilePatch,
    *,
    today: dt.date,
) -> None:
    check_profile(patch, today)
    if patch.region is not None and not is_region(patch.region):
        raise InvalidMemberInput("region", "not an ISO 3166 country or subdivision code")
    key = await data_key(conn, vault, brand_id, member_id)
    row = await _member_row(conn, brand_id, member_id)
    if row.merged_into is not None:
        raise InvalidMemberInput("member_id", f"merged into {row.merged_into}; edit that member")
    profile_sealed = None
    if patch.name is not None or patch.gender is not None or patch.birthday is not None:
        current = _open_profile(vault, key, row)
        merged = Profile(
            name=patch.name or current.name,
            gender=patch.gender or current.gender,
            birthday=patch.birthday or current.birthday,
        )
        profile_sealed = seal_profile(vault, key, brand_id, merged)
    attributes = None
    if patch.attributes is not None:
        defs = {d.name: d for d in await attribute_defs(conn, brand_id)}
        attributes = dict(row.attributes)
        for name, value in patch.attributes.items():
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = check_attribute(defs, name, value)
    await conn.execute(
        QUERIES["update_profile"],
        {
            "brand_id": brand_id,
            "member_id": member_id,
            "profile_sealed": profile_sealed,
            "region": patch.region,
            "attributes": None if attributes is None else msgspec.json.encode(attributes).decode(),
        },
    )
    if patch.birthday is not None:
        await set_birthday_md(conn, brand_id, member_id, patch.birthday)


async def set_birthday_md(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID, birthday: dt.date | None
) -> None:
    """Keep members.birthday_md (MMDD) in step with the sealed profile: the birthday event reads it."""
    await conn.execute(
        QUERIES["set_birthday_md"],
        {
            "brand_id": brand_id,
            "member_id": member_id,
            "birthday_md": birthday_mmdd(birthday),
        },
    )


def birthday_mmdd(birthday: dt.date | None) -> int | None:
    """The birthday as MMDD, the one part kept in clear (for the birthday event)."""
    return None if birthday is None else birthday.month * 100 + birthday.day


async def attribute_defs(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[AttributeDef]:
    return await fetch_all(conn, QUERIES["attribute_defs"], {"brand_id": brand_id}, AttributeDef)


async def put_attribute_def(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, data: AttributeDefIn
) -> AttributeDef:
    if (data.type == "choice") != (data.choices is not None):
        raise InvalidMemberInput("choices", "give choices for a choice attribute, and only then")
    await lock_definitions(conn, brand_id)  # its check and a rule naming it cannot pass each other
    cur = await conn.execute(QUERIES["count_attribute_defs"], {"brand_id": brand_id, "name": data.name})
    defined_count, already_defined = await cur.fetchone() or (0, False)
    if not already_defined and defined_count >= MAX_ATTRIBUTES:
        raise LimitReached("custom attributes", MAX_ATTRIBUTES)
    cur = await conn.execute(
        QUERIES["attribute_values_misfit"],
        {"brand_id": brand_id, "name": data.name, "type": data.type, "choices": data.choices or []},
    )
    members, segments = await cur.fetchone() or (0, [])
    if members or segments:  # a retype never leaves stored values or saved filters the type refuses
        raise AttributeInUse(data.name, data.type, members, segments)
    defined = await fetch_one(
        conn,
        QUERIES["put_attribute_def"],
        {"brand_id": brand_id, "name": data.name, "type": data.type, "choices": data.choices},
        AttributeDef,
    )
    assert defined is not None
    return defined


async def add_note(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    body: str,
    *,
    author: str,
) -> Note:
    key = await data_key(conn, vault, brand_id, member_id)
    note = await fetch_one(
        conn,
        QUERIES["add_note"],
        {
            "brand_id": brand_id,
            "member_id": member_id,
            "body_sealed": vault.seal(key, brand_id, "note", body.encode()),
            "author": author,
        },
        Note,
    )
    assert note is not None
    return note


async def timeline(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    before: dt.datetime,
    before_entry: tuple[str, str] | None = None,
    limit: int,
) -> list[TimelineEntry]:
    """Scans, points, coupons, draws, tier changes and service notes, newest first.

    Entries before `before`; with `before_entry` (the previous page's last `kind` and `ref`, its `at`
    as `before`), also those at that very time that come after it: one scan's points and draw share it.
    """
    row = await _member_row(conn, brand_id, member_id)
    family = await _family(conn, brand_id, member_id)
    tie_kind, tie_ref = before_entry or ("", "")
    entries = await fetch_all(
        conn,
        QUERIES["timeline"],
        {
            "brand_id": brand_id,
            "member_id": member_id,
            "family": family,
            "before": before,
            "tied": before_entry is not None,
            "tie_kind": tie_kind,
            "tie_ref": tie_ref,
            "limit": limit,
        },
        TimelineEntry,
    )
    note_ids = [int(e.ref) for e in entries if e.kind == "note"]
    if not note_ids or row.data_key_sealed is None:
        return entries
    key = vault.unwrap(member_id, row.data_key_sealed)
    bodies = {
        n.id: vault.unseal(key, brand_id, "note", n.body_sealed).decode()
        for n in await fetch_all(
            conn,
            QUERIES["note_bodies"],
            {"brand_id": brand_id, "member_id": member_id, "ids": note_ids},
            _NoteBody,
        )
    }
    return [
        msgspec.structs.replace(e, detail={**e.detail, "body": bodies.get(int(e.ref))})
        if e.kind == "note"
        else e
        for e in entries
    ]


class ExportedScan(msgspec.Struct, frozen=True):
    id: uuid.UUID
    scanned_at: dt.datetime
    verdict: str
    product_id: uuid.UUID
    batch_id: uuid.UUID
    scan_number: int
    device_id: str
    region: str | None


class ExportedDevice(msgspec.Struct, frozen=True):
    device_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime


class ExportedLedgerEntry(msgspec.Struct, frozen=True):
    id: int
    amount: int
    kind: str
    reason: str
    source: str
    created_at: dt.datetime


class ExportedNote(msgspec.Struct, frozen=True):
    created_at: dt.datetime
    author: str
    body: str


class ExportedCoupon(msgspec.Struct, frozen=True):
    code: str
    template_id: uuid.UUID
    campaign_id: uuid.UUID | None
    issued_at: dt.datetime
    valid_until: dt.datetime
    uses: int
    usage_limit: int


class _CouponRow(msgspec.Struct, frozen=True):
    code_sealed: bytes
    template_id: uuid.UUID
    campaign_id: uuid.UUID | None
    issued_at: dt.datetime
    valid_until: dt.datetime
    uses: int
    usage_limit: int


class ExportedDraw(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    scan_id: uuid.UUID
    result: str
    prize_id: uuid.UUID | None
    drawn_at: dt.datetime


class ExportedClaim(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    scan_id: uuid.UUID
    status: str
    claimed_at: dt.datetime
    # The shipping details as the member gave them (recipient, phone, address, postal code).
    shipping: dict[str, Any]
    # How the prize left, once shipped (the brand records the courier and its tracking number).
    shipped_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None


class _ClaimRow(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    scan_id: uuid.UUID
    status: str
    claimed_at: dt.datetime
    address_sealed: bytes
    shipped_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None


class MemberExport(msgspec.Struct, frozen=True):
    """Everything held about one member, for a data-access request under PIPL."""

    exported_at: dt.datetime
    profile: MemberProfile
    devices: list[ExportedDevice]
    scans: list[ExportedScan]
    scans_truncated: bool
    points_ledger: list[ExportedLedgerEntry]
    # What customer service wrote about the member.
    notes: list[ExportedNote]
    coupons: list[ExportedCoupon]
    draws: list[ExportedDraw]
    prize_claims: list[ExportedClaim]


async def export(
    conn: AsyncConnection[Any],
    vault: MemberVault,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    *,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> MemberExport:
    profile = await load_profile(conn, vault, brand_id, member_id, reveal=True)
    family = await _family(conn, brand_id, member_id)
    params = {"brand_id": brand_id, "member_id": member_id, "family": family}
    scans = await fetch_all(
        conn, QUERIES["export_scans"], {**params, "limit": EXPORT_SCAN_LIMIT + 1}, ExportedScan
    )
    return MemberExport(
        exported_at=now,
        profile=profile,
        devices=await fetch_all(conn, QUERIES["export_devices"], params, ExportedDevice),
        scans=scans[:EXPORT_SCAN_LIMIT],
        scans_truncated=len(scans) > EXPORT_SCAN_LIMIT,
        points_ledger=await fetch_all(conn, QUERIES["export_ledger"], params, ExportedLedgerEntry),
        notes=await _exported_notes(conn, vault, brand_id, member_id),
        coupons=[
            ExportedCoupon(
                code=coupons.reveal_code(master_keys, brand_id, row.code_sealed),
                **{k: v for k, v in msgspec.structs.asdict(row).items() if k != "code_sealed"},
            )
            for row in await fetch_all(conn, QUERIES["export_coupons"], params, _CouponRow)
        ],
        draws=await fetch_all(conn, QUERIES["export_draws"], params, ExportedDraw),
        prize_claims=[
            ExportedClaim(
                campaign_id=row.campaign_id,
                scan_id=row.scan_id,
                status=row.status,
                claimed_at=row.claimed_at,
                shipping=msgspec.json.decode(
                    keys.unseal(master_keys, row.address_sealed, aad=claim_aad(row.campaign_id, row.scan_id))
                ),
                shipped_at=row.shipped_at,
                carrier=row.carrier,
                tracking_number=row.tracking_number,
            )
            for row in await fetch_all(conn, QUERIES["export_claims"], params, _ClaimRow)
        ],
    )


async def _exported_notes(
    conn: AsyncConnection[Any], vault: MemberVault, brand_id: uuid.UUID, member_id: uuid.UUID
) -> list[ExportedNote]:
    rows = await fetch_all(
        conn, QUERIES["export_notes"], {"brand_id": brand_id, "member_id": member_id}, _ExportNoteRow
    )
    if not rows:
        return []
    key = await data_key(conn, vault, brand_id, member_id)
    return [
        ExportedNote(
            created_at=row.created_at,
            author=row.author,
            body=vault.unseal(key, brand_id, "note", row.body_sealed).decode(),
        )
        for row in rows
    ]


class _ExportNoteRow(msgspec.Struct, frozen=True):
    created_at: dt.datetime
    author: str
    body_sealed: bytes


async def erase(
    conn: AsyncConnection[Any], vault: MemberVault, brand_id: uuid.UUID, member_id: uuid.UUID
) -> None:
    """Make the member's personal data unreadable for good; its ledger and scans stay, anonymous."""
    key = await data_key(conn, vault, brand_id, member_id)  # locks the row; refuses an erased member
    found = await fetch_one(
        conn, QUERIES["phone_index"], {"brand_id": brand_id, "member_id": member_id}, _PhoneIndex
    )
    indexes = set()
    if found is not None and found.phone_index is not None:
        indexes.add(found.phone_index)
    if found is not None and found.phone_sealed is not None:
        # Import rows written before a master-key rotation hold the phone's index under the old key
        # until `onecode keys reseal` re-indexes them: purge under every configured key's index.
        with contextlib.suppress(UnsealError):  # a phone no configured key opens: its stored index only
            phone = vault.unseal(key, brand_id, "phone", found.phone_sealed).decode()
            indexes.update(vault.blind_indexes(brand_id, phone))
    await conn.execute(
        QUERIES["erase_member"],
        {
            "brand_id": brand_id,
            "family": await _family(conn, brand_id, member_id),
            "phone_indexes": sorted(indexes),
            "device_salt": secrets.token_hex(16),
        },
    )


class _PhoneIndex(msgspec.Struct, frozen=True):
    phone_index: bytes | None
    phone_sealed: bytes | None


class _Inactive(msgspec.Struct, frozen=True):
    id: uuid.UUID
    phone_index: bytes | None


class _Brand(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID


async def erase_inactive(conn: AsyncConnection[Any], *, now: dt.datetime, limit: int = 10_000) -> int:
    """Apply each brand's retention setting: erase up to `limit` idle members a brand; returns how many.

    Audited per brand. Runs with the daily member refresh; what is left over goes the next day.
    """
    erased = 0
    for brand in await fetch_all(conn, QUERIES["retention_brands"], {}, _Brand):
        idle = await fetch_all(
            conn,
            QUERIES["inactive_members"],
            {"brand_id": brand.brand_id, "now": now, "limit": limit},
            _Inactive,
        )
        if not idle:
            continue
        ids = [m.id for m in idle]
        family = await fetch_all(conn, QUERIES["families"], {"brand_id": brand.brand_id, "ids": ids}, _Id)
        await conn.execute(
            QUERIES["erase_member"],
            {
                "brand_id": brand.brand_id,
                "family": [f.id for f in family],
                "phone_indexes": [m.phone_index for m in idle if m.phone_index is not None],
                "device_salt": secrets.token_hex(16),
            },
        )
        await audit.record(
            conn,
            actor="system:retention",
            brand_id=brand.brand_id,
            action="member.retention_erase",
            object_type="member",
            object_id=None,
            after={"members": len(ids)},
        )
        erased += len(ids)
    return erased


async def find_by_phone(
    conn: AsyncConnection[Any], vault: MemberVault, brand_id: uuid.UUID, phone: str
) -> uuid.UUID | None:
    """Exact search through the blind index: the number is never compared, or stored, in clear."""
    indexes = vault.blind_indexes(brand_id, normalize_phone(phone))
    found = await fetch_one(
        conn, QUERIES["find_by_phone"], {"brand_id": brand_id, "phone_indexes": indexes}, _Id
    )
    return None if found is None else found.id


class _MergeState(msgspec.Struct, frozen=True):
    id: uuid.UUID
    merged_into: uuid.UUID | None
    erased_at: dt.datetime | None


async def merge(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    source_id: uuid.UUID,
    target_id: uuid.UUID,
    now: dt.datetime,
) -> int:
    """Merge the duplicate `source_id` into `target_id`; returns the points that moved with it."""
    rows = {
        r.id: r
        for r in await fetch_all(
            conn, QUERIES["merge_state"], {"brand_id": brand_id, "ids": [source_id, target_id]}, _MergeState
        )
    }
    for member_id, field in ((source_id, "member_id"), (target_id, "into")):
        row = rows.get(member_id)
        if row is None:
            raise MemberNotFound(member_id)
        if row.erased_at is not None:
            raise MemberErased(member_id)
        if row.merged_into is not None:
            raise InvalidMemberInput(field, f"already merged into {row.merged_into}")
    if source_id == target_id:
        raise InvalidMemberInput("into", "a member cannot be merged into itself")
    await conn.execute(
        QUERIES["merge_into"], {"brand_id": brand_id, "source_id": source_id, "target_id": target_id}
    )
    return await ledger.transfer(
        conn,
        ledger.Member(brand_id, source_id),
        ledger.Member(brand_id, target_id),
        reason="duplicate member merged by staff",
        now=now,
    )


async def _member_row(conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID) -> _MemberRow:
    row = await fetch_one(
        conn, QUERIES["get_member_row"], {"brand_id": brand_id, "member_id": member_id}, _MemberRow
    )
    if row is None:
        raise MemberNotFound(member_id)
    return row


async def _family(conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await fetch_all(
        conn, QUERIES["merged_family"], {"brand_id": brand_id, "member_id": member_id}, _Id
    )
    return [r.id for r in rows]


def _open_profile(vault: MemberVault, key: bytes | None, row: _MemberRow) -> Profile:
    if row.profile_sealed is None:
        return Profile()
    plain = vault.unseal(key, row.brand_id, "profile", row.profile_sealed)
    return msgspec.json.decode(plain, type=Profile)


def _mask_name(name: str) -> str:
    return name[0] + "*" * min(len(name) - 1, 3) if len(name) > 1 else "*"


def check_attribute(defs: dict[str, AttributeDef], name: str, value: Any, *, prefix: str = "") -> Any:
    """A value the brand's attribute `name` can hold (a member's, or one a segment filter matches), else
    a field error on `<prefix>attributes.<name>`."""
    field = f"{prefix}attributes.{name}"
    definition = defs.get(name)
    if definition is None:
        raise InvalidMemberInput(field, "no such attribute; define it first")
    ok = {
        "text": isinstance(value, str) and len(value) <= 200,  # noqa: PLR2004
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "date": isinstance(value, str) and _is_date(value),
        "choice": isinstance(value, str) and value in (definition.choices or []),
    }[definition.type]
    if not ok:
        raise InvalidMemberInput(field, f"not a valid {definition.type}")
    return value


def _is_date(text: str) -> bool:
    """YYYY-MM-DD and a real day (as is_iso_date in SQL): not the other forms fromisoformat takes."""
    if _ISO_DATE.fullmatch(text) is None:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True
