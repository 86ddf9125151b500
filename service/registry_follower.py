"""Keeps each worker's code registry (and blocklist) current: a version check every second, reloads on demand.

Both follow one change sequence (`registry_change_seq`): products, keys, batches, activations,
distributors' regions, clone rules and blocks all stamp it, so one cheap query tells whether anything
needs loading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from antifraud.blocklist import Blocklist
from antifraud.errors import StorageUnavailable
from codegen.registry import CodeRegistry

if TYPE_CHECKING:
    from psycopg import AsyncConnection

logger = logging.getLogger("onecode.registry")
POLL_S = 1.0
# A code that misses the cache triggers a version check (one sequence read, and a reload when anything
# changed) at most this often: a flood of forged codes costs the database at most 20 cheap queries a
# second, and a miss waits at most this long for its answer.
MIN_CHECK_GAP_S = 0.05


class RegistryFollower:
    def __init__(self, pool: AsyncConnectionPool, registry: CodeRegistry, blocklist: Blocklist) -> None:
        self._pool = pool
        self._registry = registry
        self._blocklist = blocklist
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        # When the last version check began (monotonic): misses after it need a check of their own.
        self._checked_at = 0.0

    async def follow(self) -> None:
        """Run until `stop()`; never cancelled mid-query (cancelling psycopg mid-query can stall shutdown)."""
        while not self._stopping.is_set():
            try:
                async with self._lock:
                    await self._check()
            except (psycopg.Error, PoolTimeout) as exc:
                logger.warning("registry refresh failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_S)

    async def _check(self, pool_timeout_s: float | None = None) -> None:
        """Reload when the change sequence moved (or nothing was loaded yet); the caller holds the lock."""
        began = time.monotonic()
        async with self._pool.connection(timeout=pool_timeout_s) as conn:
            if self._registry.refreshed_at == 0 or await self._registry.changed(conn):
                await self._refresh(conn)
        self._checked_at = began

    async def _refresh(self, conn: AsyncConnection[Any]) -> None:
        blocks = await self._blocklist.refresh(conn)
        registry = await self._registry.refresh(conn)
        # Both stamp the shared sequence: neither waits for the numbers the other loaded.
        self._registry.loaded_elsewhere(blocks)
        self._blocklist.loaded_elsewhere(registry)

    def stop(self) -> None:
        self._stopping.set()

    async def ensure_loaded(self) -> None:
        """Before the first load, no code can be judged: answer 503 rather than 'counterfeit'."""
        if self._registry.refreshed_at == 0 and not await self.refresh_if_stale():
            raise StorageUnavailable("the code registry is not loaded yet")

    async def apply_now(self, db: AsyncConnection[Any]) -> None:
        """Commit an admin change to what verification reads (a void, a shipment, a block, a territory, clone
        rules) and reload: this worker's next scan sees it, the others' within POLL_S."""
        await db.commit()
        await self.refresh_if_stale()

    async def refresh_if_stale(self) -> bool:
        """After a cache miss: True once a version check that began after the miss is done.

        Misses that arrive together share one check, and checks are at least MIN_CHECK_GAP_S apart.
        The check reads one sequence; the registry reloads (incrementally) only when something changed.
        """
        missed_at = time.monotonic()
        async with self._lock:
            if self._checked_at >= missed_at:
                return True
            wait = MIN_CHECK_GAP_S - (time.monotonic() - self._checked_at)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._check(pool_timeout_s=1.0)
            except (psycopg.Error, PoolTimeout) as exc:
                logger.warning("registry reload failed: %s", exc)
                return False
            return True
