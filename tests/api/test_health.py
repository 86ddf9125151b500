"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.campaigns.test_scan_rewards import points_campaign
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch


def _samples(text: str) -> dict[str, float]:
    """Prometheus text as {'name{labels}': value}, comments left out."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


class TestHealth:
    async def test_healthz_answers_without_io(self, client: AsyncTestClient[Any]) -> None:
        """/healthz is a constant answer."""
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_is_200_with_both_engines_up(self, client: AsyncTestClient[Any]) -> None:
        """/readyz checks PostgreSQL and Redis."""
        response = await client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ready"}

    async def test_readyz_is_503_when_postgres_is_unreachable(self, settings: Settings) -> None:
        """A dead database makes the instance unready, quickly, with Retry-After."""
        dead = msgspec.structs.replace(settings, database_url="postgresql://127.0.0.1:1/none")
        async with AsyncTestClient(app=create_app(dead)) as client:
            response = await client.get("/readyz")
        problem = assert_problem(response, 503, "not-ready")
        assert "postgresql" in problem["detail"]
        assert response.headers["retry-after"] == "2"

    async def test_readyz_is_503_when_redis_is_unreachable(self, settings: Settings) -> None:
        """A dead Redis makes the instance unready too."""
        dead = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
        async with AsyncTestClient(app=create_app(dead)) as client:
            response = await client.get("/readyz")
        problem = assert_problem(response, 503, "not-ready")
        assert "redis" in problem["detail"]

    async def test_metrics_are_prometheus_text(self, client: AsyncTestClient[Any]) -> None:
        """/metrics exposes the request latency histogram."""
        await client.get("/healthz")
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "onecode_http_request_duration_seconds_bucket" in response.text

    async def test_metrics_count_scans_and_rewards(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Scans by verdict, campaign outcomes and pool figures reach /metrics."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        campaign = await client.post(
            "/v1/campaigns", json=points_campaign(), headers=tenant_a.headers(Role.MARKETER)
        )
        await client.post(
            f"/v1/campaigns/{campaign.json()['id']}:activate", headers=tenant_a.headers(Role.MARKETER)
        )
        before = _samples((await client.get("/metrics")).text)
        # With an Idempotency-Key (as the consumer page sends), the answer is rendered twice: counted once.
        first = {"code": issued.urls[0], "device_id": "metrics-device-1"}
        await client.post("/v1/scans", json=first, headers={"Idempotency-Key": "metrics-1"})
        await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "metrics-device-2"})
        await client.post(
            "/v1/scans", json={"code": "https://scan.example.com/C/zz/NOPE", "device_id": "metrics-3"}
        )
        after = _samples((await client.get("/metrics")).text)
        for sample in (
            'onecode_scans_total{verdict="genuine_first"}',
            'onecode_scans_total{verdict="genuine_repeat"}',
            'onecode_scans_total{verdict="counterfeit"}',
            'onecode_rewards_total{kind="points"}',
        ):
            assert after[sample] - before.get(sample, 0.0) == 1.0, sample
        assert after["onecode_db_pool_size"] >= 1

    async def test_metrics_count_engine_errors(
        self, client: AsyncTestClient[Any], settings: Settings
    ) -> None:
        """A scan that finds Redis unreachable is a 503 and one more redis engine error."""
        sample = 'onecode_engine_errors_total{engine="redis"}'
        before = _samples((await client.get("/metrics")).text).get(sample, 0.0)
        dead_redis = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
        async with AsyncTestClient(app=create_app(dead_redis)) as broken:
            body = {"code": "https://scan.example.com/C/zz/NOPE", "device_id": "metrics-dead-1"}
            assert (await broken.post("/v1/scans", json=body)).status_code == 503
        after = _samples((await client.get("/metrics")).text)[sample]
        assert after - before == 1.0

    async def test_openapi_schema_is_served(self, client: AsyncTestClient[Any]) -> None:
        """/schema/openapi.json documents the API."""
        response = await client.get("/schema/openapi.json")
        assert response.status_code == 200
        schema = response.json()
        assert "/v1/tokens" in schema["paths"]
        # The scan handler returns a raw ASGIResponse for speed; its answer must still be documented.
        scan_ok = schema["paths"]["/v1/scans"]["post"]["responses"]["200"]
        assert scan_ok["content"]["application/json"]["schema"]["$ref"].endswith("/ScanResult")
        assert "verdict" in schema["components"]["schemas"]["ScanResult"]["properties"]
