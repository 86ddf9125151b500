"""A member's own rewards: the points balance, a page of the ledger, and the prizes won in lucky draws."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from campaigns import ledger
from campaigns.members.errors import InvalidMemberToken
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "rewards.sql")

# Per-member win caps keep this list short; the newest this many are shown (there is no prize cursor yet).
MAX_PRIZES = 100


class PrizeWon(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    campaign_name: str
    prize_id: uuid.UUID
    name: str
    kind: str
    points: int | None
    slot: int
    won_at: dt.datetime


class Rewards(msgspec.Struct, frozen=True):
    balance: int
    expiring_soon: int
    # Newest first; pass `next_before` as `before` for the next page (null on the last page).
    entries: list[ledger.LedgerEntry]
    next_before: int | None
    prizes: list[PrizeWon]


class _Found(msgspec.Struct, frozen=True):
    found: bool


async def member_rewards(
    conn: AsyncConnection[Any], member: ledger.Member, *, before: int | None, limit: int, now: dt.datetime
) -> Rewards:
    """What the member holds and has won; InvalidMemberToken when the brand has no such member."""
    exists = await fetch_one(conn, QUERIES["member_exists"], _who(member), _Found)
    if exists is None or not exists.found:
        raise InvalidMemberToken("the member token names no member of this brand")
    balance = await ledger.balance(conn, member, now=now)
    entries = await ledger.history(conn, member, before=before, limit=limit)
    prizes = await fetch_all(conn, QUERIES["prizes_won"], {**_who(member), "limit": MAX_PRIZES}, PrizeWon)
    return Rewards(
        balance=balance.balance,
        expiring_soon=balance.expiring_soon,
        entries=entries,
        # A full page may have more behind it; a short one is the last.
        next_before=entries[-1].id if len(entries) == limit else None,
        prizes=prizes,
    )


def _who(member: ledger.Member) -> dict[str, uuid.UUID]:
    return {"brand_id": member.brand_id, "member_id": member.member_id}
