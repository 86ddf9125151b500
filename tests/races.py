"""A race at a brand's cap: two transactions take the last place at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

Attempt = Callable[[psycopg.AsyncConnection[Any], int], Awaitable[object]]


async def assert_last_place_taken_once(url: str, attempt: Attempt, refused: type[BaseException]) -> None:
    """With one place left, `attempt(conn, 0)` runs uncommitted and `attempt(conn, 1)` starts beside it:
    the second must wait for the first's transaction and, once it commits, be refused with `refused`
    (counting without that lock, both see the same total and both pass the cap)."""
    async with (
        await psycopg.AsyncConnection.connect(url) as first,
        await psycopg.AsyncConnection.connect(url) as second,
    ):
        await attempt(first, 0)
        racing = asyncio.create_task(attempt(second, 1))
        await asyncio.sleep(0.5)
        assert not racing.done()  # waiting for the first transaction
        await first.commit()
        with pytest.raises(refused):
            await racing
        await second.rollback()
