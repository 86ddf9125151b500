"""Two `onecode serve` processes on one PostgreSQL and Redis: dedup, idempotency, stock and budget hold.

Every request below alternates between the two processes, as a load balancer would spread them. What
one process knows in memory (its campaign book, its registry) is never what keeps the promises: the
claim, the stock and the budget live in PostgreSQL, the idempotency key in Redis.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from service.models import Role
from tests.campaigns.test_scan_rewards import draw_campaign, figures, points_campaign
from tests.conftest import REPO
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.test_cli import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from service.settings import Settings
    from tests.conftest import Tenant

pytestmark = pytest.mark.slow
PROCESSES = 2


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"onecode serve exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"onecode serve on port {port} was not ready in {timeout:.0f} s")


@pytest.fixture
def servers(settings: Settings, tmp_path: Path) -> Iterator[list[str]]:
    """Base URLs of two service processes sharing this test's database, Redis prefix and master key."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "ONECODE_REDIS_PREFIX": settings.redis_prefix,
        "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(settings.master_key).decode(),
        "ONECODE_SCAN_DOMAIN": settings.scan_domain,
        "ONECODE_AUTO_MIGRATE": "false",
        "ONECODE_ACCESS_LOG": "false",
        "ONECODE_LOG_LEVEL": "WARNING",
        "ONECODE_WORKERS": "1",
    }
    ports = [free_port() for _ in range(PROCESSES)]
    processes = []
    try:
        for n, port in enumerate(ports):
            home = tmp_path / f"home-{n}"
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "service", "serve", "--port", str(port)],
                    env={**env, "ONECODE_HOME": str(home)},
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            _wait_ready(port, process)
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        yield client


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=200)


def device() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}"


async def scan(http: httpx.AsyncClient, base: str, code: str, **headers: str) -> dict[str, Any]:
    response = await http.post(
        f"{base}/v1/scans",
        json={"code": code, "device_id": headers.pop("device_id", device())},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def launch(http: httpx.AsyncClient, base: str, tenant: Tenant, body: dict[str, Any]) -> str:
    headers = tenant.headers(Role.MARKETER)
    created = await http.post(f"{base}/v1/campaigns", json=body, headers=headers)
    assert created.status_code == 201, created.text
    campaign_id: str = created.json()["id"]
    activated = await http.post(f"{base}/v1/campaigns/{campaign_id}:activate", headers=headers)
    assert activated.status_code == 200, activated.text
    return campaign_id


async def test_one_first_scan_and_one_idempotent_effect_across_processes(
    servers: list[str], http: httpx.AsyncClient, issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
) -> None:
    """40 phones scan one code through both processes: one genuine_first; 20 replays: one scan."""
    answers = await asyncio.gather(*(scan(http, servers[n % PROCESSES], issued.urls[0]) for n in range(40)))
    verdicts = [answer["verdict"] for answer in answers]
    assert verdicts.count("genuine_first") == 1
    assert set(verdicts) - {"genuine_first"} <= {"genuine_repeat", "suspect_clone"}

    phone = device()
    replays = await asyncio.gather(
        *(
            scan(
                http,
                servers[n % PROCESSES],
                issued.urls[1],
                device_id=phone,
                **{"Idempotency-Key": "lb-retry"},
            )
            for n in range(20)
        )
    )
    assert len({answer["scan_id"] for answer in replays}) == 1
    cur = await db.execute(
        "SELECT count(*) FROM scans WHERE device_id = %s AND scanned_at > now() - interval '1 hour'", (phone,)
    )
    assert await cur.fetchone() == (1,)


async def test_prize_stock_holds_across_processes(
    servers: list[str],
    http: httpx.AsyncClient,
    issued: IssuedBatch,
    tenant_a: Tenant,
    db: psycopg.AsyncConnection[Any],
) -> None:
    """120 first scans via both processes at a 5-prize draw: exactly 5 winners, stock 0, spend 5 x cost."""
    campaign_id = await launch(http, servers[0], tenant_a, draw_campaign(stock=5, cost_cents=2_000))
    await asyncio.sleep(1.2)  # the other process's campaign book reloads every second
    answers = await asyncio.gather(
        *(scan(http, servers[n % PROCESSES], url) for n, url in enumerate(issued.urls[10:130]))
    )
    won = [a for a in answers if a["reward"] and a["reward"]["outcomes"][0]["result"] == "won"]
    assert len(won) == 5
    found = await figures(db, campaign_id)
    assert found["awarded"] == 5
    assert found["stock_left"] == 0
    assert found["winners"] == 5
    assert found["spent"] == 5 * 2_000


async def test_budget_holds_across_processes(
    servers: list[str],
    http: httpx.AsyncClient,
    issued: IssuedBatch,
    tenant_a: Tenant,
    db: psycopg.AsyncConnection[Any],
) -> None:
    """A budget for 7 awards of 100 points, 60 first scans via both processes: 7 awards, spend = budget."""
    campaign_id = await launch(http, servers[1], tenant_a, points_campaign(budget_cents=700))
    await asyncio.sleep(1.2)
    answers = await asyncio.gather(
        *(scan(http, servers[n % PROCESSES], url) for n, url in enumerate(issued.urls[130:190]))
    )
    earned = sum(a["reward"]["points"] for a in answers if a["reward"])
    assert earned == 700
    found = await figures(db, campaign_id)
    assert found["points_awards"] == 7
    assert found["spent"] == 700
    assert found["spent_by_day"] == 700
