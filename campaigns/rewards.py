"""A member's own rewards: the points balance, a page of the ledger, coupons, and the prizes won in draws."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import phonenumbers
from phonenumbers import PhoneNumberFormat

from campaigns import coupons, ledger
from campaigns.errors import CampaignNotFound, InvalidCampaign, PrizeNotClaimable
from campaigns.members.errors import InvalidMemberInput, InvalidMemberToken
from campaigns.members.phones import normalize_phone
from codegen import keys
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "rewards.sql")

CHINA_CALLING_CODE = 86
# Per-member win caps keep this list short; the newest this many are shown (there is no prize cursor yet).
MAX_PRIZES = 100


class PrizeWon(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    campaign_name: str
    # With campaign_id, names the win to claim: POST /v1/members/me/prizes/{campaign_id}/{scan_id}/claim.
    scan_id: uuid.UUID
    prize_id: uuid.UUID
    name: str
    kind: str
    points: int | None
    slot: int
    won_at: dt.datetime
    needs_claim: bool
    # None until claimed; then claimed, later shipped.
    claim_status: str | None
    # Once shipped: when, by which courier, and the number to track the parcel with on its site.
    shipped_at: dt.datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None


class Rewards(msgspec.Struct, frozen=True):
    balance: int
    expiring_soon: int
    # Newest first; pass `next_before` as `before` for the next page (null on the last page).
    entries: list[ledger.LedgerEntry]
    next_before: int | None
    prizes: list[PrizeWon]
    # Newest first, with their codes: the member shows one at the till.
    coupons: list[coupons.MemberCoupon]


class _Found(msgspec.Struct, frozen=True):
    found: bool


async def member_rewards(
    conn: AsyncConnection[Any],
    member: ledger.Member,
    *,
    before: int | None,
    limit: int,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> Rewards:
    """What the member holds and has won; InvalidMemberToken when the brand has no such member."""
    exists = await fetch_one(conn, QUERIES["member_exists"], _who(member), _Found)
    if exists is None or not exists.found:
        raise InvalidMemberToken("the member token names no member of this brand")
    balance = await ledger.balance(conn, member, now=now)
    found = await ledger.history(conn, member, before=before, limit=limit + 1)
    entries = found[:limit]
    prizes = await fetch_all(conn, QUERIES["prizes_won"], {**_who(member), "limit": MAX_PRIZES}, PrizeWon)
    wallet = await coupons.member_coupons(
        conn, brand_id=member.brand_id, member_id=member.member_id, master_keys=master_keys, now=now
    )
    return Rewards(
        balance=balance.balance,
        expiring_soon=balance.expiring_soon,
        entries=entries,
        # One entry past the page says there is more: a page ending on the oldest entry is the last.
        next_before=entries[-1].id if len(found) > limit else None,
        prizes=prizes,
        coupons=wallet,
    )


class ClaimIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a physical prize goes; sealed under the master key, never stored in clear.

    Prizes ship within mainland China, as the draws run under its rules: the postal code, when given, is
    its six digits (optional: couriers go by address and phone, and many people do not know theirs).
    """

    recipient: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    # Any common way of writing a number; checked as enrolment checks it, kept as a courier dials it.
    phone: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    address: Annotated[str, msgspec.Meta(min_length=5, max_length=500, pattern=r"^[^\x00]+$")]
    postal_code: Annotated[str, msgspec.Meta(max_length=16)] | None = None


# The fewest characters of an address a courier can find: 北京市朝阳区 alone is already six.
MIN_ADDRESS_CHARS = 5
POSTAL_CODE = re.compile(r"[0-9]{6}")


def deliverable(data: ClaimIn) -> ClaimIn:
    """The claim as a courier needs it (trimmed, phone as dialled), or InvalidCampaign naming every fault."""
    faults: list[tuple[str, str]] = []
    recipient = data.recipient.strip()
    if not recipient:
        faults.append(("recipient", "the recipient's name is required"))
    phone = ""
    try:
        phone = courier_phone(data.phone)
    except InvalidMemberInput as exc:
        faults.append(("phone", str(exc)))
    address = data.address.strip()
    if len(address) < MIN_ADDRESS_CHARS:
        faults.append(("address", f"an address has at least {MIN_ADDRESS_CHARS} characters"))
    # A form's empty field means no postal code.
    postal_code = (data.postal_code or "").strip() or None
    if postal_code is not None and not POSTAL_CODE.fullmatch(postal_code):
        faults.append(("postal_code", "a postal code in mainland China is 6 digits"))
    if faults:
        (field, message), *more = faults
        raise InvalidCampaign(field, message, more=more)
    return ClaimIn(recipient=recipient, phone=phone, address=address, postal_code=postal_code)


def courier_phone(raw: str) -> str:
    """A valid number (InvalidMemberInput otherwise) as a courier's form takes it: a Chinese one as
    dialled at home (13800138000, 01012345678), any other in E.164 (+85291234567)."""
    number = phonenumbers.parse(normalize_phone(raw))
    if number.country_code == CHINA_CALLING_CODE:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        return "".join(c for c in national if c.isdigit())
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


class Claim(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    scan_id: uuid.UUID
    status: str
    claimed_at: dt.datetime


class _PrizeKind(msgspec.Struct, frozen=True):
    kind: str


def claim_aad(campaign_id: uuid.UUID, scan_id: uuid.UUID) -> bytes:
    return f"onecode:prize-claim:{campaign_id}:{scan_id}".encode()


async def claim_prize(
    conn: AsyncConnection[Any],
    member: ledger.Member,
    *,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: ClaimIn,
    master_key: bytes,
    now: dt.datetime,
) -> Claim:
    """Record (or correct, until it ships) the shipping address of the member's physical prize."""
    delivery = deliverable(data)
    params = {**_who(member), "campaign_id": campaign_id, "scan_id": scan_id}
    prize = await fetch_one(conn, QUERIES["prize_to_claim"], params, _PrizeKind)
    if prize is None:
        raise CampaignNotFound("prize won", f"{campaign_id}/{scan_id}")
    if prize.kind != "physical":
        raise PrizeNotClaimable("kind", f"a {prize.kind} prize is delivered by itself, not shipped")
    sealed = keys.seal(master_key, msgspec.json.encode(delivery), aad=claim_aad(campaign_id, scan_id))
    claim = await fetch_one(conn, QUERIES["save_claim"], {**params, "sealed": sealed, "now": now}, Claim)
    if claim is None:
        raise PrizeNotClaimable("status", "the prize has shipped: its address can no longer change")
    return claim


class AdjustmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A staff correction: positive adds points (expiring by the usual rule), negative takes them FIFO."""

    amount: Annotated[int, msgspec.Meta(ge=-10_000_000, le=10_000_000)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=200)]


class Adjustment(msgspec.Struct, frozen=True):
    member_id: uuid.UUID
    amount: int
    # The ledger entries written (one per lot touched when taking points).
    entry_ids: list[int]
    balance: int


async def adjust_points(
    conn: AsyncConnection[Any], member: ledger.Member, data: AdjustmentIn, *, actor: str, now: dt.datetime
) -> Adjustment:
    """Correct a member's points with a reason; the member must be the brand's own."""
    exists = await fetch_one(conn, QUERIES["member_exists"], _who(member), _Found)
    if exists is None or not exists.found:
        raise CampaignNotFound("member", member.member_id)
    entry_ids = await ledger.adjust(conn, member, data.amount, reason=data.reason, actor=actor, now=now)
    after = await ledger.balance(conn, member, now=now)
    return Adjustment(member.member_id, data.amount, entry_ids, after.balance)


def _who(member: ledger.Member) -> dict[str, uuid.UUID]:
    return {"brand_id": member.brand_id, "member_id": member.member_id}
