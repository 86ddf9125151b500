"""The locust kit run as a performance engineer runs it: a real `onecode serve --demo`, locust headless."""

from __future__ import annotations

import csv
import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from loadtests.seeding import cache_path
from tests.conftest import REPO, Engines
from tests.loadtests.test_loadtest_cli import kit_env
from tests.test_cli import ONECODE, free_port, wait_ready

# Only look for locust: importing it here would gevent-monkey-patch this whole pytest process.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="the load extra is not installed"
)

SCENARIOS = ("scan first", "scan repeat", "scan forged", "scan bot", "scan bot 429")
SEED_CODES = 2000


@pytest.mark.slow
class TestLocustKit:
    def test_headless_run_seeds_its_codes_and_every_scenario_passes(
        self, engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """15 s, 10 users on a fresh server: exit 0, codes seeded over the API, each scenario ran clean."""
        port = free_port()
        env = kit_env(engines, database_url, redis_prefix, tmp_path)  # the kit finds the demo token
        command = [
            sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"),
            "--host", f"http://127.0.0.1:{port}", "--headless", "-u", "10", "-r", "10", "-t", "15s",
            "--only-summary", "--csv", str(tmp_path / "run"),
            "--seed-codes", str(SEED_CODES), "--seed-dir", str(tmp_path / "seed"),
        ]  # fmt: skip
        with (tmp_path / "serve.log").open("w") as serve_log:
            server = subprocess.Popen(
                [*ONECODE, "serve", "--port", str(port), "--demo"],
                env=env,
                stdout=serve_log,
                stderr=serve_log,
            )
            try:
                wait_ready(f"http://127.0.0.1:{port}/readyz", deadline_s=20)
                locust = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=60, check=False
                )
            finally:
                server.send_signal(signal.SIGINT)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
        assert locust.returncode == 0, locust.stderr[-3000:]

        cache = cache_path(tmp_path / "seed", f"http://127.0.0.1:{port}", SEED_CODES)
        header, *lines = cache.read_text().splitlines()  # "# batch <id>", "# ..." lines, one URL a line
        urls = [line for line in lines if not line.startswith("#")]
        batch_id = header.removeprefix("# batch ")
        assert len(urls) == SEED_CODES
        with psycopg.connect(database_url) as conn:
            quantity = conn.execute("SELECT quantity FROM batches WHERE id = %s", [batch_id]).fetchone()
            claims, devices, repeated = conn.execute(
                "SELECT count(*), count(DISTINCT first_device_id), count(*) FILTER (WHERE scan_count > 1)"
                " FROM code_claims WHERE batch_id = %s",
                [batch_id],
            ).fetchone() or (0, 0, 0)
        assert quantity == (SEED_CODES,)

        with (tmp_path / "run_stats.csv").open() as handle:
            stats = {row["Name"]: row for row in csv.DictReader(handle)}
        for name in SCENARIOS:
            assert int(stats[name]["Request Count"]) > 0, name
            assert int(stats[name]["Failure Count"]) == 0, name
        assert int(stats["Aggregated"]["Failure Count"]) == 0
        # Every first scan claimed its code, each from a device of its own; some were scanned again.
        # (A request cut off by the end of the run may have committed without being counted: >=.)
        assert claims >= int(stats["scan first"]["Request Count"])
        assert devices == claims
        assert repeated > 0
