"""The points ledger: append-only entries, points earned as lots that expire and are spent first-in-first-out.

Every operation runs inside the caller's transaction. Spending locks the member's open lots, so two
concurrent redemptions of one member serialise instead of overspending; the CHECK constraints on
`points_lots` are the last line of defence.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from campaigns.errors import InsufficientPoints, InvalidAmount
from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "ledger.sql")

EntryKind = Literal["earn", "redeem", "expire", "adjust"]


class LedgerEntry(msgspec.Struct, frozen=True):
    id: int
    amount: int
    kind: EntryKind
    reason: str
    source: str
    lot_id: int | None
    actor: str | None
    created_at: dt.datetime


class Balance(msgspec.Struct, frozen=True):
    balance: int
    expiring_soon: int


class Member(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    member_id: uuid.UUID


def default_expiry(now: dt.datetime) -> dt.datetime:
    """Points earned this year expire at the end of next year (the common loyalty-programme rule)."""
    return dt.datetime(now.year + 2, 1, 1, tzinfo=now.tzinfo or dt.UTC)


async def earn(
    conn: AsyncConnection[Any],
    member: Member,
    amount: int,
    *,
    reason: str,
    source: str,
    now: dt.datetime,
    expires_at: dt.datetime | None = None,
    kind: EntryKind = "earn",
    actor: str | None = None,
) -> int:
    """Add a lot of `amount` points; returns the ledger entry id."""
    if amount <= 0:
        raise InvalidAmount("points earned must be positive")
    cur = await conn.execute(
        QUERIES["insert_lot"],
        {**_who(member), "amount": amount, "now": now, "expires_at": expires_at or default_expiry(now)},
    )
    lot = await cur.fetchone()
    assert lot is not None
    return await _entry(conn, member, amount, kind, reason, source, lot[0], actor, now)


async def spend(
    conn: AsyncConnection[Any],
    member: Member,
    amount: int,
    *,
    reason: str,
    source: str,
    now: dt.datetime,
    kind: EntryKind = "redeem",
    actor: str | None = None,
) -> list[int]:
    """Take `amount` points from the oldest-expiring lots first; one ledger entry per lot touched."""
    if amount <= 0:
        raise InvalidAmount("points spent must be positive")
    cur = await conn.execute(QUERIES["open_lots_for_update"], {**_who(member), "now": now})
    lots = await cur.fetchall()
    available = sum(remaining for _, remaining in lots)
    if available < amount:
        raise InsufficientPoints(wanted=amount, available=available)
    entries: list[int] = []
    left = amount
    for lot_id, remaining in lots:
        if left == 0:
            break
        take = min(left, remaining)
        await conn.execute(QUERIES["take_from_lot"], {"take": take, "lot_id": lot_id})
        entries.append(await _entry(conn, member, -take, kind, reason, source, lot_id, actor, now))
        left -= take
    return entries


async def adjust(
    conn: AsyncConnection[Any], member: Member, amount: int, *, reason: str, actor: str, now: dt.datetime
) -> list[int]:
    """A staff correction with a reason: positive adds a lot, negative spends FIFO."""
    if amount == 0:
        raise InvalidAmount("an adjustment of zero points changes nothing")
    source = f"adjustment:{actor}"
    if amount > 0:
        return [
            await earn(
                conn, member, amount, reason=reason, source=source, now=now, kind="adjust", actor=actor
            )
        ]
    return await spend(
        conn, member, -amount, reason=reason, source=source, now=now, kind="adjust", actor=actor
    )


async def transfer(
    conn: AsyncConnection[Any], source: Member, target: Member, *, reason: str, now: dt.datetime
) -> int:
    """Move every open lot of `source` to `target` (a member merge); returns the points moved.

    The ledger is append-only, so a move is an entry out of each source lot and a new lot, with the
    same expiry, on the target: both histories stay true and the points expire when they would have.
    """
    cur = await conn.execute(QUERIES["open_lots_to_move"], {**_who(source), "now": now})
    moved = 0
    for lot_id, remaining, expires_at in await cur.fetchall():
        await conn.execute(QUERIES["take_from_lot"], {"take": remaining, "lot_id": lot_id})
        into = f"merge-into:{target.member_id}"
        await _entry(conn, source, -remaining, "adjust", reason, into, lot_id, None, now)
        await earn(
            conn,
            target,
            remaining,
            reason=reason,
            source=f"merge-from:{source.member_id}",
            now=now,
            expires_at=expires_at,
            kind="adjust",
        )
        moved += remaining
    return moved


async def expire(conn: AsyncConnection[Any], *, now: dt.datetime, limit: int = 1000) -> int:
    """Expire lots past their date (one entry each); returns how many. Safe to run in parallel."""
    cur = await conn.execute(QUERIES["expired_lots_for_update"], {"now": now, "limit": limit})
    expired = await cur.fetchall()
    for lot_id, brand_id, member_id, remaining in expired:
        await conn.execute(QUERIES["take_from_lot"], {"take": remaining, "lot_id": lot_id})
        await _entry(
            conn,
            Member(brand_id, member_id),
            -remaining,
            "expire",
            "points expired",
            f"lot:{lot_id}",
            lot_id,
            None,
            now,
        )
    return len(expired)


async def balance(
    conn: AsyncConnection[Any], member: Member, *, now: dt.datetime, soon_days: int = 30
) -> Balance:
    cur = await conn.execute(
        QUERIES["balance"], {**_who(member), "now": now, "soon": now + dt.timedelta(days=soon_days)}
    )
    row = await cur.fetchone()
    assert row is not None
    return Balance(balance=row[0], expiring_soon=row[1])


async def history(
    conn: AsyncConnection[Any], member: Member, *, before: int | None = None, limit: int = 50
) -> list[LedgerEntry]:
    return await fetch_all(
        conn, QUERIES["ledger_page"], {**_who(member), "before": before, "limit": limit}, LedgerEntry
    )


def _who(member: Member) -> dict[str, uuid.UUID]:
    return {"brand_id": member.brand_id, "member_id": member.member_id}


async def _entry(
    conn: AsyncConnection[Any],
    member: Member,
    amount: int,
    kind: EntryKind,
    reason: str,
    source: str,
    lot_id: int | None,
    actor: str | None,
    now: dt.datetime,
) -> int:
    cur = await conn.execute(
        QUERIES["insert_entry"],
        {
            **_who(member),
            "amount": amount,
            "kind": kind,
            "reason": reason,
            "source": source,
            "lot_id": lot_id,
            "actor": actor,
            "now": now,
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
