"""Asking the member refresh to recompute every member, because a brand's member rules changed.

The minute's refresh recomputes only the members who scanned or earned since the last one. A new rule
tag, a deleted tag, a tier ladder, lifecycle thresholds or a tier window change the answer for members
who did neither: without a request they would wait for the nightly full refresh. A request makes the
next refresh a full one (every member of every brand, as the nightly run does; such changes are rare,
and one statement over all members is cheaper than naming a large brand's members one by one).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "recompute.sql")


class Request(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    reason: str


async def request(conn: AsyncConnection[Any], brand_id: uuid.UUID, reason: str) -> None:
    """In the transaction of the change, so that the request exists exactly when the change does."""
    await conn.execute(QUERIES["request_recompute"], {"brand_id": brand_id, "reason": reason})


async def take(conn: AsyncConnection[Any]) -> list[Request]:
    """The requests made so far, removed as the refresh's transaction commits (kept if it fails)."""
    return await fetch_all(conn, QUERIES["take_recompute_requests"], {}, Request)
