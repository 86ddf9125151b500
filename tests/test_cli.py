"""The `onecode` command line, run as a user runs it: as a subprocess with environment settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql

from service.cli import emit
from service.settings import Settings
from tests.campaigns.test_campaign_api import step
from tests.campaigns.test_scan_rewards import draw_campaign, launch, scan
from tests.conftest import Engines, Tenant
from tests.fixtures_codes import issue_batch

ONECODE = [sys.executable, "-m", "service"]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ONECODE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "ONECODE_HOME": str(tmp_path / "home"),
        "ONECODE_LOG_JSON": "false",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, deadline_s: float) -> float:
    """Seconds until `url` answered 200, or fail after `deadline_s`."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready within {deadline_s} s")


class TestCli:
    def test_demo_json_is_stable_across_runs(self, cli_env: dict[str, str]) -> None:
        """`onecode demo --json` twice: same brand, same token, no duplicate data, no failure."""
        first = run_cli("demo", "--json", env=cli_env)
        assert first.returncode == 0, first.stderr
        second = run_cli("demo", "--json", env=cli_env)
        assert second.returncode == 0, second.stderr
        one, two = json.loads(first.stdout), json.loads(second.stdout)
        assert {"api", "brand_id", "token", "gtin", "batch_id", "scan_urls"} <= one.keys()
        assert one["api"] == "http://127.0.0.1:8000"
        assert len(one["scan_urls"]) >= 10
        assert all(f"/01/{one['gtin']}/21/" in url for url in one["scan_urls"])
        assert sorted(c["kind"] for c in one["campaigns"]) == ["lucky_draw", "points"]
        assert one == two

    async def test_demo_campaigns_are_active_on_the_demo_product(
        self, cli_env: dict[str, str], db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Both demo campaigns are active on the demo product, the draw's seed committed; re-runs add none."""
        first = json.loads(run_cli("demo", "--json", env=cli_env).stdout)
        assert run_cli("demo", "--json", env=cli_env).returncode == 0
        cur = await db.execute(
            "SELECT kind, status, eligibility->'product_ids', seed_hash IS NOT NULL,"
            " (SELECT count(*) FROM prizes p WHERE p.campaign_id = c.id)"
            " FROM campaigns c WHERE brand_id = %s ORDER BY kind",
            (first["brand_id"],),
        )
        rows = await cur.fetchall()
        assert rows == [
            ("lucky_draw", "active", [first["product_id"]], True, 4),
            ("points", "active", [first["product_id"]], False, 0),
        ]

    def test_batch_create_and_export(self, cli_env: dict[str, str], tmp_path: Path) -> None:
        """`onecode batch create --gtin --quantity --json`, then `codes export` to a CSV and a TXT file."""
        demo = json.loads(run_cli("demo", "--json", env=cli_env).stdout)
        created = run_cli(
            "batch",
            "create",
            "--gtin",
            demo["gtin"],
            "--quantity",
            "500",
            "--lot",
            "L9",
            "--json",
            env=cli_env,
        )
        assert created.returncode == 0, created.stderr
        batch = json.loads(created.stdout)
        assert batch["quantity"] == 500 and batch["lot"] == "L9" and batch["batch_id"]
        out = tmp_path / "codes.csv"
        exported = run_cli(
            "codes", "export", batch["batch_id"], "--format", "csv", "--out", str(out), env=cli_env
        )
        assert exported.returncode == 0, exported.stderr
        lines = out.read_text().splitlines()
        assert lines[0] == "index,serial,url" and len(lines) == 501
        part = tmp_path / "part.txt"
        args = ["codes", "export", batch["batch_id"], "--format", "txt", "--start", "100", "--stop", "110"]
        assert run_cli(*args, "--out", str(part), env=cli_env).returncode == 0
        assert part.read_text().splitlines() == [line.split(",")[2] for line in lines[101:111]]
        # An interrupted file, cut off in the middle of code 250's line, goes on from --start 250.
        resumed = tmp_path / "resumed.csv"
        interrupted = "\n".join(lines[:251]) + "\n" + lines[251][:20]
        resumed.write_text(interrupted)
        args = ["codes", "export", batch["batch_id"], "--format", "csv", "--out", str(resumed)]
        wrong = run_cli(*args, "--start", "240", env=cli_env)
        assert wrong.returncode == 2 and "position 239" in wrong.stderr
        assert resumed.read_text() == interrupted
        again = run_cli(*args, "--start", "250", env=cli_env)
        assert again.returncode == 0, again.stderr
        assert resumed.read_text() == out.read_text()
        bad = run_cli("batch", "create", "--gtin", "12345678901231", "--quantity", "5", env=cli_env)
        assert bad.returncode == 2 and "--gtin" in bad.stderr

    async def test_demo_ships_to_two_distributors_and_ship_activates_the_rest(
        self, cli_env: dict[str, str], db: psycopg.AsyncConnection[Any]
    ) -> None:
        """The demo's distributors and unactivated codes; `onecode ship` activates a range; no re-run adds."""
        demo = json.loads(run_cli("demo", "--json", env=cli_env).stdout)
        again = json.loads(run_cli("demo", "--json", env=cli_env).stdout)
        assert [d["regions"] for d in demo["distributors"]] == [
            ["CN-JS", "CN-SH", "CN-ZJ"],
            ["CN-FJ", "CN-GD"],
        ]
        assert [d["token"] for d in again["distributors"]] == [d["token"] for d in demo["distributors"]]
        assert len(demo["unactivated_urls"]) == 10
        cur = await db.execute("SELECT count(*), sum(stop_index - start_index) FROM activations")
        assert await cur.fetchone() == (2, 700)
        east = demo["distributors"][0]["id"]
        args = ["ship", demo["batch_id"], "--distributor", east, "--start", "700", "--stop", "800", "--json"]
        shipped = run_cli(*args, env=cli_env)
        assert shipped.returncode == 0, shipped.stderr
        assert json.loads(shipped.stdout)["items"] == 100
        twice = run_cli(*args, env=cli_env)
        assert twice.returncode == 1 and "already shipped" in twice.stderr

    def test_token_create_prints_a_working_secret_once(self, cli_env: dict[str, str]) -> None:
        """`onecode token create` makes a brand token; `token revoke` ends it."""
        assert run_cli("brand", "create", "--slug", "cli-brand", "--name", "CLI", env=cli_env).returncode == 0
        created = run_cli(
            "token", "create", "--brand", "cli-brand", "--role", "marketer", "--json", env=cli_env
        )
        assert created.returncode == 0, created.stderr
        issued = json.loads(created.stdout)
        assert issued["secret"].startswith("oc_")
        assert issued["token"]["role"] == "marketer"
        revoked = run_cli("token", "revoke", issued["token"]["id"], "--brand", "cli-brand", env=cli_env)
        assert revoked.returncode == 0, revoked.stderr
        unknown = run_cli("token", "revoke", str(uuid.uuid4()), "--brand", "cli-brand", env=cli_env)
        assert unknown.returncode == 1
        assert unknown.stderr.startswith("Error: ") and "Traceback" not in unknown.stderr, unknown.stderr

    def test_help_writes_nothing(self, tmp_path: Path) -> None:
        """Reading a command's help on a fresh machine creates no master key (nor anything else)."""
        env = {key: value for key, value in os.environ.items() if key != "ONECODE_MASTER_KEY"}
        env["ONECODE_HOME"] = str(tmp_path / "home")
        result = run_cli("serve", "--help", env=env)
        assert result.returncode == 0 and "--demo" in result.stdout, result.stderr
        assert not (tmp_path / "home").exists()

    def test_gs1_prefixes_are_recorded_and_checked(self, cli_env: dict[str, str]) -> None:
        """The platform operator's command: recorded (sorted, once each), cleared, and a bad one refused."""
        assert run_cli("brand", "create", "--slug", "gs1-co", "--name", "GS1 Co", env=cli_env).returncode == 0
        recorded = run_cli(
            "brand", "gs1-prefixes", "--brand", "gs1-co", "6901234", "690123", "--json", env=cli_env
        )
        assert recorded.returncode == 0, recorded.stderr
        assert json.loads(recorded.stdout)["gs1_company_prefixes"] == ["690123", "6901234"]
        refused = run_cli("brand", "gs1-prefixes", "--brand", "gs1-co", "69x", env=cli_env)
        assert refused.returncode == 2 and "PREFIXES" in refused.stderr
        cleared = run_cli("brand", "gs1-prefixes", "--brand", "gs1-co", "--json", env=cli_env)
        assert json.loads(cleared.stdout)["gs1_company_prefixes"] == []

    def test_a_database_not_yet_migrated_is_a_clear_error(
        self, cli_env: dict[str, str], engines: Engines
    ) -> None:
        """New code on an old database (an upgrade before `onecode migrate`): one line saying what to run."""
        name = f"oc_unmigrated_{engines.run_id}"
        with engines.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            env = {**cli_env, "DATABASE_URL": engines.database_url(name)}
            result = run_cli("brand", "create", "--slug", "late-co", "--name", "Late Co", env=env)
        finally:
            with engines.admin() as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "run `onecode migrate` first" in result.stderr

    def test_unknown_brand_is_a_clear_error(self, cli_env: dict[str, str]) -> None:
        """A typo in --brand names the parameter instead of a traceback."""
        result = run_cli("token", "create", "--brand", "nope", "--role", "marketer", env=cli_env)
        assert result.returncode == 2
        assert "--brand" in result.stderr

    def test_audit_verify_reports_an_intact_chain(self, cli_env: dict[str, str]) -> None:
        """`onecode audit verify` exits 0 on an untouched log."""
        run_cli("demo", "--json", env=cli_env)
        result = run_cli("audit", "verify", env=cli_env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["intact"] is True


class TestVerifyDraws:
    async def test_a_finished_draw_verifies_and_a_tampered_outcome_fails(
        self,
        cli_env: dict[str, str],
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Before the end: exit 1 (no seed); after: all draws match; one edited outcome: exit 1 naming it."""
        prizes = [
            {"name": "Gold", "kind": "physical", "weight": 1, "stock": 3, "cost_cents": 10_000},
            {"name": "Points", "kind": "points", "weight": 5, "stock": 100, "cost_cents": 10, "points": 50},
        ]
        campaign_id = await launch(client, tenant_a, draw_campaign(prizes=prizes, no_prize_weight=10))
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=30)
        await asyncio.gather(*(scan(client, url) for url in issued.urls))
        early = run_cli("campaign", "verify-draws", campaign_id, env=cli_env)
        assert early.returncode == 1
        assert "revealed only when it ends" in early.stderr
        assert (await step(client, tenant_a, campaign_id, "end")).status_code == 200
        clean = run_cli("campaign", "verify-draws", str(campaign_id), env=cli_env)
        assert clean.returncode == 0, clean.stderr
        assert "30 draw(s) checked, 0 mismatch(es)" in clean.stdout
        cur = await db.execute(
            "UPDATE draws SET drawn_prize_id = NULL WHERE campaign_id = %s AND drawn_prize_id IS NOT NULL"
            " AND scan_id = (SELECT scan_id FROM draws WHERE campaign_id = %s AND drawn_prize_id IS NOT NULL"
            " LIMIT 1) RETURNING scan_id",
            (campaign_id, campaign_id),
        )
        tampered = await cur.fetchone()
        assert tampered is not None
        caught = run_cli("campaign", "verify-draws", str(campaign_id), env=cli_env)
        assert caught.returncode == 1
        assert "1 mismatch(es)" in caught.stdout
        assert f"mismatch: scan {tampered[0]}" in caught.stdout

    def test_an_unknown_campaign_is_a_clear_error(self, cli_env: dict[str, str]) -> None:
        """A campaign id that names no lucky draw exits 1 with a message, not a traceback."""
        result = run_cli("campaign", "verify-draws", "00000000-0000-4000-8000-000000000000", env=cli_env)
        assert result.returncode == 1
        assert "not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
class TestServeOnEmbeddedEngines:
    def test_cold_start_is_ready_within_15_s_and_restarts_on_the_same_data(self, tmp_path: Path) -> None:
        """No configuration at all: embedded PostgreSQL and Redis, /readyz 200 within 15 s, data kept."""
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env |= {"ONECODE_HOME": str(tmp_path / "home"), "ONECODE_LOG_JSON": "false"}
        port = free_port()
        brand_ids = []
        for _run in range(2):
            server = subprocess.Popen(
                [*ONECODE, "serve", "--port", str(port), "--demo"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=(tmp_path / "serve.log").open("a"),
                text=True,
            )
            try:
                ready_after = wait_ready(f"http://127.0.0.1:{port}/readyz", deadline_s=15)
                assert ready_after < 15
            finally:
                server.send_signal(signal.SIGINT)
                output, _ = server.communicate(timeout=30)
            demo_line = next(line for line in output.splitlines() if line.startswith("demo: "))
            brand_ids.append(json.loads(demo_line.removeprefix("demo: "))["brand_id"])
        assert brand_ids[0] == brand_ids[1]
        # Clean shutdown: no engine process keeps running for this home.
        leftovers = subprocess.run(
            ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
        )
        assert leftovers.stdout.strip() == ""


def test_plain_output_writes_nested_values_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`onecode ship` without --json printed Python's repr: None and single-quoted dicts."""
    emit({"reference": "DN-1", "note": None, "items": [{"start": 0, "stop": 5}]}, as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        "reference: DN-1",
        "note: null",
        'items: [{"start":0,"stop":5}]',
    ]
