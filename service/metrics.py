"""Prometheus metrics shared by the HTTP edge and the domain code it calls."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
    "onecode_db_pool_waiting", "Requests waiting for a PostgreSQL connection.", multiprocess_mode="livesum"
)


def render_metrics() -> tuple[bytes, str]:
    """The exposition text; aggregates all worker processes when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
