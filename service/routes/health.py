"""Liveness, readiness and metrics endpoints for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get

from service.metrics import render_metrics
from service.problems import problem_response
from service.state import AppState


class Health(msgspec.Struct, frozen=True):
    status: str


@get("/healthz", include_in_schema=True, tags=["operations"], sync_to_thread=False)
def healthz() -> Health:
    """Liveness: the process answers. No I/O, so a slow database never restarts healthy workers."""
    return Health(status="ok")


@get("/readyz", tags=["operations"])
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Readiness: PostgreSQL and Redis both answer within two seconds."""
    state: AppState = request.app.state.onecode
    failures: list[str] = []
    try:
        async with asyncio.timeout(2):
            async with state.pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not ready", and the reason is reported
        failures.append("postgresql")
    try:
        async with asyncio.timeout(2):
            await state.redis.ping()
    except Exception:  # noqa: BLE001
        failures.append("redis")
    if failures:
        return problem_response(
            request,
            status=503,
            slug="not-ready",
            title="Not ready",
            detail="unreachable: " + ", ".join(failures),
            headers={"Retry-After": "2"},
        )
    return Response(Health(status="ready"))


@get("/metrics", tags=["operations"], sync_to_thread=False)
def metrics() -> Response[bytes]:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
