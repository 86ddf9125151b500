"""Asking the member refresh to recompute every member of a brand whose member rules changed.

The minute's refresh recomputes only the members who scanned or earned since the last one. A new rule
tag, tier ladder, lifecycle threshold or tier window changes the answer for members who did neither:
without a request they would wait for the nightly full refresh.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "stats.sql")


class _Id(msgspec.Struct, frozen=True):
    id: uuid.UUID


async def request(conn: AsyncConnection[Any], brand_id: uuid.UUID, reason: str) -> None:
    """In the transaction of the change, so that the request exists exactly when the change does."""
    await conn.execute(QUERIES["request_recompute"], {"brand_id": brand_id, "reason": reason})


async def take(conn: AsyncConnection[Any]) -> list[uuid.UUID]:
    """The brands asked for, removed as the refresh's transaction commits (kept if it fails)."""
    return [b.id for b in await fetch_all(conn, QUERIES["take_recompute_requests"], {}, _Id)]
