"""Prize fulfilment for the brand: a draw's claimed physical prizes with their addresses, shipped once."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from campaigns import campaigns
from campaigns.errors import CampaignNotFound, PrizeNotShippable
from campaigns.rewards import claim_aad
from codegen import keys
from service.cursors import time_cursor
from service.db import fetch_all, fetch_one
from service.queries import load_queries
from service.spreadsheets import safe_cell

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "fulfilment.sql")

ClaimStatus = Literal["claimed", "shipped"]
# One line of text without leading or trailing blanks: what goes on a label or into a courier's form.
_ONE_LINE = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"


class ShippingAddress(msgspec.Struct, frozen=True):
    """Where the winner asked for the prize to go (rewards.ClaimIn, as sealed)."""

    recipient: str
    # Chinese numbers as dialled at home (13800138000), others in E.164; older claims as typed.
    phone: str
    address: str
    postal_code: str | None = None


class PrizeClaim(msgspec.Struct, frozen=True):
    """A physical prize won and claimed: the win, the claim, its shipment once shipped, and the address."""

    # With the campaign id, names the claim to ship: POST .../prize-claims/{scan_id}/ship.
    scan_id: uuid.UUID
    prize_id: uuid.UUID
    prize: str
    slot: int
    won_at: dt.datetime
    member_id: uuid.UUID
    status: ClaimStatus
    # When the winner last gave or corrected the address.
    claimed_at: dt.datetime
    shipped_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None
    # None once the winner had their personal data erased: nothing is left to ship to.
    address: ShippingAddress | None


class _ClaimRow(msgspec.Struct, frozen=True):
    scan_id: uuid.UUID
    prize_id: uuid.UUID
    prize: str
    slot: int
    won_at: dt.datetime
    member_id: uuid.UUID
    status: ClaimStatus
    claimed_at: dt.datetime
    shipped_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None
    address_sealed: bytes | None


class ShipmentIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the prize left: the courier (顺丰速运, EMS, ...) and the number to track the parcel by."""

    carrier: Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=_ONE_LINE)]
    # Letters and digits, with the spaces and dashes some couriers print (1Z 999 AA1 01 2345 6784).
    tracking_number: Annotated[
        str, msgspec.Meta(min_length=4, max_length=40, pattern=r"^[0-9A-Za-z](?:[0-9A-Za-z -]*[0-9A-Za-z])?$")
    ]


class _WinToShip(msgspec.Struct, frozen=True):
    kind: str
    status: ClaimStatus | None
    shipped_at: dt.datetime | None
    carrier: str | None
    tracking_number: str | None


_ADDRESS = msgspec.json.Decoder(ShippingAddress)
# A phone as claims keep it (13800138000, +85291234567): never a formula, so written as it is (an older
# claim's phone as typed goes through safe_cell like any text).
_DIALLED = re.compile(r"^\+?[0-9]+$")


def cursor_of(claim: PrizeClaim) -> str:
    return time_cursor(claim.won_at, claim.scan_id)


async def claims_page(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    status: ClaimStatus | None,
    member_id: uuid.UUID | None,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
    master_keys: Sequence[bytes],
) -> list[PrizeClaim]:
    """The campaign's claims, oldest win first, addresses opened; CampaignNotFound for another brand's."""
    await campaigns.get_campaign(conn, brand_id, campaign_id)  # the brand check
    rows = await fetch_all(
        conn,
        QUERIES["claims_page"],
        {
            "brand_id": brand_id,
            "campaign_id": campaign_id,
            "status": status,
            "member_id": member_id,
            "after_at": after[0] if after else None,
            "after_scan": after[1] if after else None,
            "limit": limit,
        },
        _ClaimRow,
    )
    # Off the event loop: a file of 50,000 addresses takes a third of a second to open, and the loop
    # serves scans.
    return await asyncio.to_thread(lambda: [_opened(campaign_id, row, master_keys) for row in rows])


async def ship(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: ShipmentIn,
    *,
    master_keys: Sequence[bytes],
    now: dt.datetime,
) -> PrizeClaim:
    """Mark a claimed prize shipped, once; from then on its address is fixed.

    CampaignNotFound when the brand has no such win; PrizeNotShippable when it is not physical, not
    claimed yet, or shipped already (the detail says when, how and with which tracking number).
    """
    params = {"brand_id": brand_id, "campaign_id": campaign_id, "scan_id": scan_id}
    shipped = await fetch_one(
        conn,
        QUERIES["ship_claim"],
        {**params, "carrier": data.carrier, "tracking_number": data.tracking_number, "now": now},
        _ClaimRow,
    )
    if shipped is not None:
        return _opened(campaign_id, shipped, master_keys)
    win = await _claimed_physical_win(conn, params)
    if win.shipped_at is None:  # marked shipped by hand before shipments were recorded
        raise PrizeNotShippable("already_shipped", "the prize was shipped already")
    raise PrizeNotShippable(
        "already_shipped",
        f"the prize was shipped at {win.shipped_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC by {win.carrier}, "
        f"tracking number {win.tracking_number}",
    )


class _CorrectedRow(_ClaimRow, frozen=True):
    carrier_before: str
    tracking_number_before: str


async def correct_shipment(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: ShipmentIn,
    *,
    master_keys: Sequence[bytes],
) -> tuple[ShipmentIn, PrizeClaim]:
    """Correct a shipped prize's courier or tracking number (a mistyped label number); the winner sees
    the new one. Returns what the shipment said before, and the claim.

    CampaignNotFound when the brand has no such win; PrizeNotShippable when it is not physical, not
    claimed, or not shipped (yet, or by hand before shipments were recorded: nothing to correct).
    """
    params = {"brand_id": brand_id, "campaign_id": campaign_id, "scan_id": scan_id}
    corrected = await fetch_one(
        conn,
        QUERIES["correct_shipment"],
        {**params, "carrier": data.carrier, "tracking_number": data.tracking_number},
        _CorrectedRow,
    )
    if corrected is not None:
        before = ShipmentIn(
            carrier=corrected.carrier_before, tracking_number=corrected.tracking_number_before
        )
        return before, _opened(campaign_id, corrected, master_keys)
    await _claimed_physical_win(conn, params)
    raise PrizeNotShippable("not_shipped", "no shipment of this prize was recorded: ship it first")


async def _claimed_physical_win(conn: AsyncConnection[Any], params: dict[str, Any]) -> _WinToShip:
    """Why a shipment statement matched nothing, for the causes ship and correction share: no such win
    in the brand (CampaignNotFound), not a physical prize, no address yet (PrizeNotShippable)."""
    win = await fetch_one(conn, QUERIES["win_to_ship"], params, _WinToShip)
    if win is None:
        raise CampaignNotFound("prize won", f"{params['campaign_id']}/{params['scan_id']}")
    if win.kind != "physical":
        raise PrizeNotShippable("not_physical", f"a {win.kind} prize is delivered by itself, not shipped")
    if win.status is None:
        raise PrizeNotShippable("not_claimed", "the winner has not given a shipping address yet")
    return win


def _opened(campaign_id: uuid.UUID, row: _ClaimRow, master_keys: Sequence[bytes]) -> PrizeClaim:
    address = None
    if row.address_sealed is not None:
        address = _ADDRESS.decode(
            keys.unseal(master_keys, row.address_sealed, aad=claim_aad(campaign_id, row.scan_id))
        )
    return PrizeClaim(
        scan_id=row.scan_id,
        prize_id=row.prize_id,
        prize=row.prize,
        slot=row.slot,
        won_at=row.won_at,
        member_id=row.member_id,
        status=row.status,
        claimed_at=row.claimed_at,
        shipped_at=row.shipped_at,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
        address=address,
    )


# Address columns first: a label template or a courier's bulk-order sheet takes them as they come.
CLAIM_COLUMNS = [
    "recipient",
    "phone",
    "address",
    "postal_code",
    "prize",
    "status",
    "claimed_at",
    "shipped_at",
    "carrier",
    "tracking_number",
    "won_at",
    "scan_id",
    "member_id",
]
CSV_CHUNK_ROWS = 500


def claims_csv(claims: list[PrizeClaim], *, header: bool) -> Iterator[bytes]:
    """CSV rows in chunks, for streaming; the first file starts with a BOM so that Excel reads the
    Chinese as UTF-8. Typed-in text never runs as a formula (service.spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        out.write("\ufeff")
        writer.writerow(CLAIM_COLUMNS)
    for n, claim in enumerate(claims, start=1):
        to = claim.address
        writer.writerow(
            [
                safe_cell(to.recipient) if to else "",
                (to.phone if _DIALLED.match(to.phone) else safe_cell(to.phone)) if to else "",
                safe_cell(to.address) if to else "",
                safe_cell(to.postal_code or "") if to else "",
                safe_cell(claim.prize),
                claim.status,
                claim.claimed_at.isoformat(),
                claim.shipped_at.isoformat() if claim.shipped_at else "",
                safe_cell(claim.carrier or ""),
                claim.tracking_number or "",
                claim.won_at.isoformat(),
                claim.scan_id,
                claim.member_id,
            ]
        )
        if n % CSV_CHUNK_ROWS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()
