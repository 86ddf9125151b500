"""`onecode loadtest seed|run` against a real `onecode serve --demo`: thresholds, summary, reconciliation."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis
from click.testing import CliRunner

from loadtests.cli import RUN_TIME, loadtest
from loadtests.mix import parse_mix
from loadtests.reconcile import Reconciliation, _compare
from loadtests.results import Endpoint, RunResults
from loadtests.summary import breaches
from tests.test_cli import ONECODE, free_port, run_cli, wait_ready

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import Engines

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="the load extra is not installed"
)


class TestPieces:
    def test_the_mix_is_parsed_and_checked(self) -> None:
        assert parse_mix("first=6,repeat=3") == (["first", "repeat"], [6, 3])
        for wrong in ("first=x", "buy=3", "first=0"):
            with pytest.raises(ValueError, match="--mix"):
                parse_mix(wrong)

    def test_a_wrong_run_time_is_a_usage_error_before_anything_is_seeded(self) -> None:
        for good in ("30s", "5m", "1h30m", "2h", "1h0m10s", "90"):
            assert RUN_TIME.fullmatch(good), good
        for wrong in ("5x", "0s", "", "m5", "1m1h"):
            answer = CliRunner().invoke(
                loadtest, ["run", "--target", "http://127.0.0.1:9", "--duration", wrong]
            )
            assert answer.exit_code == 2, (wrong, answer.output)
            assert "is not a run time" in answer.output

    def test_unanswered_scans_explain_only_what_they_could_have_earned(self) -> None:
        """2 unanswered scans at 10 points each: 20 extra points are unconfirmed, 21 are a difference."""
        within = Reconciliation()
        _compare(within, "points", told=100, held=120, unseen=20)
        assert (within.differences, within.unconfirmed) == (0, 20)
        beyond = Reconciliation()
        _compare(beyond, "points", told=100, held=121, unseen=20)
        assert (beyond.differences, beyond.unconfirmed) == (21, 0)
        missing = Reconciliation()
        _compare(missing, "points", told=100, held=90, unseen=20)
        assert missing.differences == 10

    def test_scans_cut_off_by_the_stop_travel_with_the_reports_and_count_as_unseen(self) -> None:
        worker = RunResults(unanswered=1, cut_off=2)
        master = RunResults()
        master.merge(worker.drain())
        assert (master.unanswered, master.cut_off, master.unseen) == (1, 2, 3)
        assert (worker.unanswered, worker.cut_off) == (0, 0)

    def test_thresholds(self) -> None:
        endpoints = [
            Endpoint("scan first", 100, 0, 10.0, 5, 20, 80),
            Endpoint("page", 100, 2, 10.0, 2, 5, 300),
            Endpoint("Aggregated", 200, 2, 20.0, 3, 10, 250),
        ]
        assert breaches(endpoints, max_p99_ms=None, max_error_rate=0.02) == []
        assert breaches(endpoints, max_p99_ms=None, max_error_rate=0.005) == ["error rate 0.0100 > 0.005"]
        assert breaches(endpoints, max_p99_ms=200, max_error_rate=None) == [
            "page: p99 300 ms > 200 ms",
            "Aggregated: p99 250 ms > 200 ms",
        ]


def kit_env(engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    """A server's and the kit's environment: this test's engines, phones' own addresses trusted."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": engines.redis_url,
        "ONECODE_REDIS_PREFIX": redis_prefix,
        "ONECODE_HOME": str(tmp_path / "home"),
        "ONECODE_LOG_JSON": "false",
        "ONECODE_ACCESS_LOG": "false",
        "ONECODE_TRUST_FORWARDED_FOR": "true",
    }
    env.pop("ONECODE_TOKEN", None)  # each test says which token the kit uses
    return env


@contextlib.contextmanager
def demo_server(env: dict[str, str], port: int, log: Path, *, demo: bool = True) -> Iterator[None]:
    with log.open("w") as serve_log:
        server = subprocess.Popen(
            [*ONECODE, "serve", "--port", str(port), *(["--demo"] if demo else [])],
            env=env,
            stdout=serve_log,
            stderr=serve_log,
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", deadline_s=30)
            yield
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.mark.slow
class TestLoadtestCommand:
    def test_a_distributed_run_with_a_redis_flush_halfway_passes_and_reconciles(
        self, engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """Two locust workers, two service processes, 20 s, points + draw, Redis flushed at 12 s: PASS."""
        port, other_port = free_port(), free_port()
        env = kit_env(engines, database_url, redis_prefix, tmp_path)
        out = tmp_path / "run"
        command = [
            *ONECODE, "loadtest", "run", "--target", f"http://127.0.0.1:{port}",
            "--target", f"http://127.0.0.1:{other_port}",
            "--users", "12", "--spawn-rate", "12", "--duration", "20s", "--workers", "2",
            "--codes", "3000", "--campaign", "both", "--seed-dir", str(tmp_path / "seed"), "--out", str(out),
            "--max-p99-ms", "2000", "--max-error-rate", "0.01",
        ]  # fmt: skip
        with (
            demo_server(env, port, tmp_path / "serve.log"),
            demo_server(env, other_port, tmp_path / "serve-2.log", demo=False),
        ):
            run = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            time.sleep(12)
            flushed = redis.Redis.from_url(engines.redis_url)
            keys = list(flushed.scan_iter(match=f"{redis_prefix}*", count=1000))
            assert keys, "the run had written no Redis keys by halfway"
            flushed.delete(*keys)
            output, _ = run.communicate(timeout=120)
            # The second process served its share: its own scan counter moved.
            metrics = (
                urllib.request.urlopen(f"http://127.0.0.1:{other_port}/metrics", timeout=5).read().decode()
            )
            served = sum(
                float(line.rpartition(" ")[2])
                for line in metrics.splitlines()
                if line.startswith("onecode_scans_total{")
            )
            assert served > 10, metrics[-2000:]
        assert run.returncode == 0, output[-4000:]
        assert "PASS" in output
        # Scans in flight at the stop may have been rewarded unseen: unconfirmed, never a difference.
        reconciled = re.search(r"reconciliation: 0 difference\(s\), \d+ unconfirmed, 0 scan\(s\) unanswered, "
                               r"(\d+) cut off by the stop", output)  # fmt: skip
        assert reconciled is not None, output[-4000:]
        assert "prizes won: told" in output
        # Every kind of user ran: consumers, the bot, the marketer, the distributor (with its own token).
        for name in ("page", "scan first", "scan repeat", "scan bot", "campaign stats", "report diversion"):
            assert f"\n{name} " in output, name
        for name in ("report.html", "stats_stats.csv", "results.json", "summary.txt"):
            assert (out / name).exists(), name
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT first_device_id), max(scan_count) FROM code_claims"
                " JOIN batches b ON b.id = code_claims.batch_id WHERE b.lot = 'LOADTEST'"
            ).fetchone()
        assert row is not None
        claims, devices, most = row
        # Two workers shared the seed through the master: no code went out twice as "unscanned".
        assert claims > 50
        assert devices == claims
        assert most > 1

    def test_seeding_refuses_a_brand_that_is_not_a_load_test_brand(
        self, engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """A real brand's token: `loadtest seed` exits 1 and names the way out; nothing is created."""
        port = free_port()
        env = kit_env(engines, database_url, redis_prefix, tmp_path)
        assert run_cli("brand", "create", "--slug", "real-brand", "--name", "Real", env=env).returncode == 0
        created = run_cli(
            "token", "create", "--brand", "real-brand", "--role", "brand_admin", "--json", env=env
        )
        token = json.loads(created.stdout)["secret"]
        with demo_server(env, port, tmp_path / "serve.log"):
            seeded = run_cli(
                "loadtest", "seed", "--target", f"http://127.0.0.1:{port}", "--token", token,
                "--codes", "100", "--seed-dir", str(tmp_path / "seed"), env=env,
            )  # fmt: skip
        assert seeded.returncode == 1
        assert "is not a load-test brand" in seeded.stderr
        assert "--loadtest" in seeded.stderr
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM products p JOIN brands b ON b.id = p.brand_id"
                " WHERE b.slug = 'real-brand'"
            ).fetchone()
        assert row == (0,)

    def test_a_platform_token_makes_the_load_test_brand_and_seeds_it(
        self, engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """`seed --platform-token`: brand 'loadtest' (a load-test brand) is made once, then reused."""
        port = free_port()
        env = kit_env(engines, database_url, redis_prefix, tmp_path)
        created = run_cli("token", "create", "--role", "platform_admin", "--json", env=env)
        env["ONECODE_PLATFORM_TOKEN"] = json.loads(created.stdout)["secret"]
        with demo_server(env, port, tmp_path / "serve.log", demo=False):
            for _ in range(2):
                seeded = run_cli(
                    "loadtest", "seed", "--target", f"http://127.0.0.1:{port}", "--codes", "100",
                    "--campaign", "points", "--seed-dir", str(tmp_path / "seed"), env=env,
                )  # fmt: skip
                assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        with psycopg.connect(database_url) as conn:
            brands = conn.execute("SELECT slug, is_loadtest FROM brands").fetchall()
            live = conn.execute("SELECT count(*) FROM campaigns WHERE status = 'active'").fetchone()
        assert brands == [("loadtest", True)]
        assert live == (1,)  # the second seed reused the first one's batch and campaign

    def test_a_missed_threshold_fails_the_run(
        self, engines: Engines, database_url: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """An impossible p99 (0 ms) makes `loadtest run` exit 1 and say which endpoint missed it."""
        port = free_port()
        env = kit_env(engines, database_url, redis_prefix, tmp_path)
        command = [
            *ONECODE, "loadtest", "run", "--target", f"http://127.0.0.1:{port}", "--users", "4",
            "--duration", "5s", "--codes", "500", "--campaign", "none", "--seed-dir", str(tmp_path / "seed"),
            "--out", str(tmp_path / "run"), "--max-p99-ms", "0",
        ]  # fmt: skip
        with demo_server(env, port, tmp_path / "serve.log"):
            run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "threshold missed: scan first: p99" in run.stdout
        assert "FAIL" in run.stdout
