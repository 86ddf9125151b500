"""Coupons: templates marketers define, unguessable codes issued to members, redemption at the till.

A coupon is issued by a scan (a coupon campaign, or a coupon prize of a lucky draw) in the scan's own
transaction, see `award_scan_rewards`. Its code is 16 Crockford base32 characters (80 random bits),
shown as XXXX-XXXX-XXXX-XXXX; the database keeps its SHA-256 to find it and a sealed copy for the
member's wallet, never the code in clear. Redeeming is idempotent per the till's order reference:
a retried request returns the first answer and uses the coupon once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from campaigns.errors import (
    CampaignNotFound,
    CouponBelowMinimumSpend,
    CouponForeign,
    CouponNotFound,
    CouponNotUsable,
    InvalidCoupon,
    OrderAlreadyRedeemed,
)
from codegen import keys
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "coupons.sql")

# Crockford's base32: no I, L, O or U, so a code read aloud or typed at a till is hard to get wrong.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
# The newest this many coupons are shown in the wallet (per-member caps keep the list short).
MAX_WALLET_COUPONS = 100

Cents = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
CouponStatus = Literal["usable", "not_yet_valid", "expired", "used"]


class CouponTemplateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    discount_kind: Literal["amount", "percent"]
    amount_off_cents: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None = None
    percent_off: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    max_discount_cents: Annotated[int, msgspec.Meta(ge=1, le=10**12)] | None = None
    min_spend_cents: Cents = 0
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    usage_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    # What issuing one coupon charges a campaign's budget; defaults to the amount off.
    cost_cents: Cents | None = None


class CouponTemplate(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    name: str
    discount_kind: str
    amount_off_cents: int | None
    percent_off: int | None
    max_discount_cents: int | None
    min_spend_cents: int
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    valid_days: int | None
    usage_limit: int
    cost_cents: int
    created_at: dt.datetime


class RedeemIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The till's order number: the same order redeems the coupon once, however often it retries.
    order_ref: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    spend_cents: Cents
    store: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class Redemption(msgspec.Struct, frozen=True, kw_only=True):
    coupon_id: uuid.UUID
    order_ref: str
    spend_cents: int
    discount_cents: int
    store: str | None
    redeemed_at: dt.datetime
    uses_left: int = 0
    # True when this answer repeats an earlier redemption of the same order.
    replayed: bool = False


class CouponCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What the till sees before redeeming: whether the coupon can be used, and what it takes off."""

    name: str
    status: CouponStatus
    valid_from: dt.datetime
    valid_until: dt.datetime
    uses_left: int
    min_spend_cents: int
    # Whether the `spend_cents` asked about reaches `min_spend_cents`; null when none was given.
    min_spend_met: bool | None = None
    # For the `spend_cents` asked about; null when none was given or the coupon cannot be used.
    discount_cents: int | None


class MemberCoupon(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    code: str
    name: str
    discount_kind: str
    amount_off_cents: int | None
    percent_off: int | None
    max_discount_cents: int | None
    min_spend_cents: int
    valid_from: dt.datetime
    valid_until: dt.datetime
    uses_left: int
    status: CouponStatus
    campaign_id: uuid.UUID | None
    issued_at: dt.datetime


class _Coupon(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    valid_from: dt.datetime
    valid_until: dt.datetime
    uses: int
    usage_limit: int
    name: str
    discount_kind: str
    amount_off_cents: int | None
    percent_off: int | None
    max_discount_cents: int | None
    min_spend_cents: int

    def status(self, now: dt.datetime) -> CouponStatus:
        if self.uses >= self.usage_limit:
            return "used"
        if now < self.valid_from:
            return "not_yet_valid"
        if now >= self.valid_until:
            return "expired"
        return "usable"

    def discount(self, spend_cents: int) -> int:
        if self.percent_off is not None:
            off = spend_cents * self.percent_off // 100
            if self.max_discount_cents is not None:
                off = min(off, self.max_discount_cents)
        else:
            off = self.amount_off_cents or 0
        return min(off, spend_cents)


class _WalletRow(_Coupon, frozen=True):
    code_sealed: bytes
    campaign_id: uuid.UUID | None
    issued_at: dt.datetime


class _Count(msgspec.Struct, frozen=True):
    n: int


class IssuedCode(msgspec.Struct, frozen=True):
    """A fresh code as the award statement stores it: hex SHA-256 and hex sealed copy."""

    hash_hex: str
    sealed_hex: str


# --- codes ---------------------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize(raw: str) -> str | None:
    """The code as issued from what a person typed (any case, dashes, spaces, O for 0), or None."""
    code = raw.replace("-", "").replace(" ", "").upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def code_hash(code: str) -> bytes:
    return hashlib.sha256(b"onecode coupon v1\x00" + code.encode()).digest()


def code_aad(brand_id: uuid.UUID) -> bytes:
    return f"onecode:coupon-code:{brand_id}".encode()


def issue_code(master_key: bytes, brand_id: uuid.UUID) -> IssuedCode:
    code = new_code()
    sealed = keys.seal(master_key, code.encode(), aad=code_aad(brand_id))
    return IssuedCode(code_hash(code).hex(), sealed.hex())


def reveal_code(master_keys: Sequence[bytes], brand_id: uuid.UUID, sealed: bytes) -> str:
    return display(keys.unseal(master_keys, sealed, aad=code_aad(brand_id)).decode())


# --- templates -----------------------------------------------------------------------------------


def check_template(data: CouponTemplateIn) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if data.discount_kind == "amount":
        if data.amount_off_cents is None:
            found.append(("amount_off_cents", "an amount coupon needs the amount it takes off"))
        if data.percent_off is not None or data.max_discount_cents is not None:
            found.append(("percent_off", "an amount coupon takes no percentage"))
    elif data.percent_off is None:
        found.append(("percent_off", "a percent coupon needs the percentage it takes off"))
    elif data.amount_off_cents is not None:
        found.append(("amount_off_cents", "a percent coupon takes no fixed amount"))
    if data.valid_until is None and data.valid_days is None:
        found.append(("valid_until", "give an end date, a number of valid days, or both"))
    if data.valid_from and data.valid_until and data.valid_until <= data.valid_from:
        found.append(("valid_until", "the coupon must be valid until after it becomes valid"))
    if data.cost_cents is None and data.discount_kind == "percent":
        found.append(("cost_cents", "say what a percent coupon costs the budget"))
    return found


async def create_template(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, data: CouponTemplateIn
) -> CouponTemplate:
    found = check_template(data)
    if found:
        (field, message), *more = found
        raise InvalidCoupon(field, message, more=more)
    params = msgspec.structs.asdict(data)
    if params["cost_cents"] is None:
        params["cost_cents"] = data.amount_off_cents
    template = await fetch_one(
        conn, QUERIES["insert_template"], {"brand_id": brand_id, **params}, CouponTemplate
    )
    assert template is not None  # INSERT ... RETURNING always returns the row
    return template


async def get_template(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, template_id: uuid.UUID
) -> CouponTemplate:
    template = await fetch_one(
        conn, QUERIES["get_template"], {"brand_id": brand_id, "template_id": template_id}, CouponTemplate
    )
    if template is None:
        raise CampaignNotFound("coupon template", template_id)
    return template


async def find_template_by_name(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, name: str
) -> CouponTemplate | None:
    return await fetch_one(
        conn, QUERIES["template_by_name"], {"brand_id": brand_id, "name": name}, CouponTemplate
    )


async def list_templates(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[CouponTemplate]:
    return await fetch_all(
        conn,
        QUERIES["list_templates"],
        {"brand_id": brand_id, "after": after, "limit": limit},
        CouponTemplate,
    )


async def count_brand_templates(conn: AsyncConnection[Any], brand_id: uuid.UUID, ids: set[uuid.UUID]) -> int:
    count = await fetch_one(
        conn, QUERIES["count_brand_templates"], {"brand_id": brand_id, "ids": list(ids)}, _Count
    )
    return 0 if count is None else count.n


# --- the till ------------------------------------------------------------------------------------


async def _find(conn: AsyncConnection[Any], brand_id: uuid.UUID, raw_code: str, *, lock: bool) -> _Coupon:
    code = normalize(raw_code)
    coupon = None
    if code is not None:
        query = QUERIES["coupon_for_update" if lock else "coupon_by_hash"]
        coupon = await fetch_one(conn, query, {"code_hash": code_hash(code)}, _Coupon)
    if coupon is None:
        raise CouponNotFound("coupon", raw_code)
    if coupon.brand_id != brand_id:
        raise CouponForeign("the coupon belongs to another brand")
    return coupon


async def check(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    raw_code: str,
    *,
    spend_cents: int | None,
    now: dt.datetime,
) -> CouponCheck:
    coupon = await _find(conn, brand_id, raw_code, lock=False)
    status = coupon.status(now)
    min_spend_met = None if spend_cents is None else spend_cents >= coupon.min_spend_cents
    usable = status == "usable" and min_spend_met is True
    return CouponCheck(
        name=coupon.name,
        status=status,
        valid_from=coupon.valid_from,
        valid_until=coupon.valid_until,
        uses_left=coupon.usage_limit - coupon.uses,
        min_spend_cents=coupon.min_spend_cents,
        min_spend_met=min_spend_met,
        discount_cents=coupon.discount(spend_cents) if usable and spend_cents is not None else None,
    )


async def redeem(
    conn: AsyncConnection[Any],
    *,
    brand_id: uuid.UUID,
    raw_code: str,
    data: RedeemIn,
    actor: str,
    now: dt.datetime,
) -> Redemption:
    """Use the coupon once for the order; the same order again returns the first answer."""
    coupon = await _find(conn, brand_id, raw_code, lock=True)
    order = {"coupon_id": coupon.id, "order_ref": data.order_ref}
    prior = await fetch_one(conn, QUERIES["redemption_of_order"], order, Redemption)
    if prior is not None:
        if prior.spend_cents != data.spend_cents:
            raise OrderAlreadyRedeemed(data.order_ref)
        left = coupon.usage_limit - coupon.uses
        return msgspec.structs.replace(prior, uses_left=left, replayed=True)
    status = coupon.status(now)
    if status != "usable":
        raise CouponNotUsable(status, _REFUSALS[status])
    if data.spend_cents < coupon.min_spend_cents:
        raise CouponBelowMinimumSpend(minimum_cents=coupon.min_spend_cents)
    redemption = await fetch_one(
        conn,
        QUERIES["redeem"],
        {
            **order,
            "spend_cents": data.spend_cents,
            "discount_cents": coupon.discount(data.spend_cents),
            "store": data.store,
            "actor": actor,
            "now": now,
        },
        Redemption,
    )
    assert redemption is not None  # INSERT ... RETURNING always returns the row
    return msgspec.structs.replace(redemption, uses_left=coupon.usage_limit - coupon.uses - 1)


_REFUSALS: dict[CouponStatus, str] = {
    "usable": "",
    "not_yet_valid": "the coupon is not valid yet",
    "expired": "the coupon has expired",
    "used": "the coupon has been used up",
}


# --- the member's wallet -------------------------------------------------------------------------


async def member_coupons(
    conn: AsyncConnection[Any],
    *,
    brand_id: uuid.UUID,
    member_id: uuid.UUID,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> list[MemberCoupon]:
    rows = await fetch_all(
        conn,
        QUERIES["member_coupons"],
        {"brand_id": brand_id, "member_id": member_id, "limit": MAX_WALLET_COUPONS},
        _WalletRow,
    )
    return [
        MemberCoupon(
            id=row.id,
            code=reveal_code(master_keys, brand_id, row.code_sealed),
            name=row.name,
            discount_kind=row.discount_kind,
            amount_off_cents=row.amount_off_cents,
            percent_off=row.percent_off,
            max_discount_cents=row.max_discount_cents,
            min_spend_cents=row.min_spend_cents,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            uses_left=row.usage_limit - row.uses,
            status=row.status(now),
            campaign_id=row.campaign_id,
            issued_at=row.issued_at,
        )
        for row in rows
    ]
