"""PostgreSQL access: the async pool, one transaction per request, and rows converted to Structs."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

import msgspec
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from psycopg import AsyncConnection

    from service.settings import Settings

T = TypeVar("T")


def make_pool(settings: Settings, conninfo: str | None = None) -> AsyncConnectionPool:
    """Built closed; the app's lifespan opens it, so importing or constructing never touches the network."""
    return AsyncConnectionPool(
        conninfo or settings.database_url or "",
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        open=False,
        name="onecode",
        # A dead server must not stall start-up or requests for long: fail fast, let the client retry.
        kwargs={"connect_timeout": 3, "application_name": "onecode"},
        reconnect_timeout=0,
    )


async def fetch_one(
    conn: AsyncConnection[Any], query: LiteralString, params: Mapping[str, Any], as_type: type[T]
) -> T | None:
    """The first row as `as_type`, validated (text becomes enums, and so on), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    return None if row is None else msgspec.convert(row, as_type)


async def fetch_all(
    conn: AsyncConnection[Any], query: LiteralString, params: Mapping[str, Any], as_type: type[T]
) -> list[T]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    return msgspec.convert(rows, list[as_type])  # type: ignore[valid-type]


@contextlib.asynccontextmanager
async def planned_each_time(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """Statements planned for their actual parameters on every run: never prepared on this connection.

    psycopg prepares a statement run 5 times on a connection, and PostgreSQL may then settle on one
    generic plan, made without the values. For statements given large id arrays (the member refresh's
    tens of thousands of members) such a plan tests `id = ANY($1)` element by element for every row
    instead of hashing the array: a refresh of 60,000 members took 51 s instead of 2.3 s. Planning them
    each time costs a millisecond, and they run once a minute.
    """
    before = conn.prepare_threshold
    conn.prepare_threshold = None
    try:
        yield
    finally:
        conn.prepare_threshold = before
