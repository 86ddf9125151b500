"""Prometheus metrics shared by the HTTP edge and the domain code it calls."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

REQUEST_LATENCY = Histogram(
    "onecode_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ENGINE_ERRORS = Counter(
    "onecode_engine_errors_total", "PostgreSQL/Redis errors seen by request handlers.", ["engine"]
)
POOL_WAITING = Gauge(
    "onecode_db_pool_waiting",
    "Requests waiting for a connection of the primary's pool.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "onecode_db_pool_size", "Connections open in the primary's pool.", multiprocess_mode="livesum"
)
POOL_AVAILABLE = Gauge(
    "onecode_db_pool_available", "Idle connections in the primary's pool.", multiprocess_mode="livesum"
)
SCANS = Counter("onecode_scans_total", "Scans answered, by verdict.", ["verdict"])
# Bound once: the scan path increments one of these per scan, without a label lookup.
SCANS_BY_VERDICT = {
    verdict: SCANS.labels(verdict)
    for verdict in ("genuine_first", "genuine_repeat", "suspect_clone", "not_activated", "counterfeit")
}
REWARDS = Counter(
    "onecode_rewards_total",
    "Campaign outcomes of scans: points, prize, coupon, no_prize, refused (capped, over budget, sold out).",
    ["kind"],
)
REWARDS_BY_KIND = {
    kind: REWARDS.labels(kind) for kind in ("points", "prize", "coupon", "no_prize", "refused")
}
POOL_SAMPLE_S = 5.0


async def sample_pool(pool: AsyncConnectionPool, stopping: asyncio.Event) -> None:
    """Copy the pool's figures into the gauges every few seconds (cheaper than on every request)."""
    while not stopping.is_set():
        stats = pool.get_stats()
        POOL_SIZE.set(stats.get("pool_size", 0))
        POOL_AVAILABLE.set(stats.get("pool_available", 0))
        POOL_WAITING.set(stats.get("requests_waiting", 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), POOL_SAMPLE_S)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text; aggregates all worker processes when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
