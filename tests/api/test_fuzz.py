"""Property-based requests to every operation of the OpenAPI schema (schemathesis): whatever a client
sends that the schema allows, or almost allows, no answer is a 500.

The service runs as it does in production (`onecode serve --demo`, over HTTP) on a database of its
own, called with the demo's `brand_admin` token. The examples are derandomized so that CI is
repeatable; for a deeper search run the CLI against a live service:
`schemathesis run http://127.0.0.1:8000/schema/openapi.json -H "Authorization: Bearer $TOKEN"
-c not_a_server_error --max-time 600`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.settings import Settings
from tests.conftest import Engines, cloned_database
from tests.test_cli import free_port, wait_ready

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class LiveApi:
    url: str
    token: str
    log: Path


@pytest.fixture(scope="module")
def live_api(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    home = tmp_path_factory.mktemp("fuzz")
    with cloned_database(engines, f"oc_fuzz_{engines.run_id}") as database_url:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": engines.redis_url,
            "ONECODE_REDIS_PREFIX": f"fuzz:{engines.run_id}:",
            "ONECODE_HOME": str(home),
            "ONECODE_LOG_JSON": "false",
            "ONECODE_ACCESS_LOG": "false",
            # Thousands of requests from one address in a minute: the limits would answer most with 429.
            "ONECODE_ADMIN_RATE_PER_MINUTE": "100000000",
            "ONECODE_SCANS_PER_IP_MINUTE": "100000000",
        }
        log = home / "serve.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        try:
            assert server.stdout is not None
            demo_line = next(line for line in server.stdout if line.startswith("demo: "))
            wait_ready(f"http://127.0.0.1:{port}/readyz", deadline_s=30)
            token = json.loads(demo_line.removeprefix("demo: "))["token"]
            yield LiveApi(f"http://127.0.0.1:{port}", token, log)
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)


def _openapi_document() -> dict[str, Any]:
    """The schema the service publishes at /schema/openapi.json, built without engines (collection
    needs the operations before any server runs)."""
    offline = Settings(
        database_url="postgresql://offline@127.0.0.1:1/none",
        redis_url="redis://127.0.0.1:1/0",
        redis_prefix="offline:",
        home=Path("/nonexistent/onecode"),
        master_key=secrets.token_bytes(32),
    )
    document: dict[str, Any] = create_app(offline).openapi_schema.to_schema()
    return document


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_is_answered_with_a_server_error(case: Any, live_api: LiveApi) -> None:
    try:
        case.call_and_validate(
            base_url=live_api.url,
            headers={"Authorization": f"Bearer {live_api.token}"},
            checks=[not_a_server_error],
            timeout=30,
        )
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis reports its failures as a group
        # The server's side of a 500: its traceback, as it logged it.
        logged = live_api.log.read_text()
        exc.add_note(logged[logged.rfind("unhandled error") :][:4000])
        raise
