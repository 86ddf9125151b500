"""Periodic housekeeping each worker runs: future scan partitions and expired idempotency keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.queries import load_queries

logger = logging.getLogger("onecode.maintenance")
QUERIES = load_queries("antifraud.sql", "scans.sql")
INTERVAL_S = 3600.0
RETRY_S = 30.0
MONTHS_AHEAD = 2


async def run_once(pool: AsyncConnectionPool) -> None:
    """Idempotent and cheap, so every worker may run it; the DDL is skipped when partitions exist."""
    async with pool.connection() as conn:
        await conn.execute(QUERIES["ensure_partitions"], {"months_ahead": MONTHS_AHEAD})
        await conn.execute(QUERIES["purge_idempotency"])


async def housekeeping(pool: AsyncConnectionPool, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        pause = INTERVAL_S
        try:
            await run_once(pool)
        except (psycopg.Error, PoolTimeout) as exc:
            logger.warning("housekeeping failed, retrying in %.0f s: %s", RETRY_S, exc)
            pause = RETRY_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)
