"""`onecode backup` and `onecode restore`: every row of a used database comes back; no half restores."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg import sql

from service import audit, backups
from service.demo import DemoInfo, seed_demo
from tests.campaigns.test_scan_rewards import scan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from litestar import Litestar

    from service.settings import Settings
    from tests.conftest import Engines, Tenant

ONECODE = [sys.executable, "-m", "service"]
_numbers = itertools.count()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ONECODE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


async def run_cli_async(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, env=env)


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "ONECODE_HOME": str(tmp_path / "cli-home"),
        "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(settings.master_key).decode(),
        "ONECODE_LOG_JSON": "false",
    }


@pytest.fixture
def empty_database(engines: Engines) -> Iterator[str]:
    """A new database with nothing in it: where a backup is restored."""
    name = f"oc_restore_{engines.run_id}_{next(_numbers)}"
    with engines.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield engines.database_url(name)
    finally:
        with engines.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def demo(settings: Settings) -> DemoInfo:
    """The demo brand (a batch shipped to two distributors, a points campaign and a lucky draw), seeded
    before the app starts so that its campaign book holds both campaigns from the first scan."""
    return seed_demo(settings)


@pytest.fixture
async def demo_client(demo: DemoInfo, app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


def table_counts(url: str) -> dict[str, int]:
    """Rows of every table of schema public, partitions (and the partitioned parents) included."""
    with psycopg.connect(url) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relkind IN ('r', 'p') ORDER BY relname"
            )
        ]
        counts: dict[str, int] = {}
        for name in names:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
            assert row is not None
            counts[name] = row[0]
        return counts


def ledger(url: str) -> list[tuple[Any, ...]]:
    """Each member's points: the ledger's sum and what its lots still hold."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT m.id, (SELECT coalesce(sum(amount), 0) FROM points_ledger l WHERE l.member_id = m.id),"
            " (SELECT coalesce(sum(remaining), 0) FROM points_lots o WHERE o.member_id = m.id)"
            " FROM members m ORDER BY m.id"
        ).fetchall()


class TestRoundTrip:
    @pytest.mark.slow
    async def test_a_backup_restores_every_row_of_a_used_database(
        self,
        demo: DemoInfo,
        demo_client: AsyncTestClient[Litestar],
        settings: Settings,
        cli_env: dict[str, str],
        empty_database: str,
        tmp_path: Path,
    ) -> None:
        """Scans, members, claims, rewards and the audit log made through the API all come back: the same
        rows in every table and partition, the same points per member, an intact audit chain."""
        for url in demo.scan_urls[:15]:
            await scan(demo_client, url)
        for url in demo.scan_urls[:3]:
            await scan(demo_client, url)  # repeats, from other phones
        await scan(demo_client, demo.unactivated_urls[0])  # not activated: logged, never rewarded
        forged = demo.scan_urls[0][:-1] + ("A" if demo.scan_urls[0][-1] != "A" else "B")
        assert (await scan(demo_client, forged))["verdict"] == "counterfeit"
        source = table_counts(settings.database_url or "")
        assert source["scans"] == 19 and source["counterfeit_scans"] == 1
        assert source["code_claims"] == 15 and source["members"] >= 15
        assert source["points_ledger"] >= 15 and source["draws"] >= 15 and source["audit_log"] > 0

        dump = tmp_path / "backups" / "onecode.dump"
        dump.parent.mkdir()
        done = await run_cli_async("backup", str(dump), env=cli_env)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600
        assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
        assert [p.name for p in dump.parent.iterdir()] == ["onecode.dump"]  # no temporary file left

        restored = await run_cli_async("restore", str(dump), "--target", empty_database, env=cli_env)
        assert restored.returncode == 0, restored.stderr
        assert f"scans: {source['scans']} rows" in restored.stdout
        assert table_counts(empty_database) == source
        assert ledger(empty_database) == ledger(settings.database_url or "")
        async with await psycopg.AsyncConnection.connect(empty_database) as conn:
            chain = await audit.verify_chain(conn)
        assert chain.intact and chain.checked == source["audit_log"]


class TestRestoreSafety:
    @pytest.mark.slow
    async def test_a_target_with_tables_is_refused_unless_clean_and_a_failed_restore_changes_nothing(
        self,
        tenant_a: Tenant,
        settings: Settings,
        cli_env: dict[str, str],
        empty_database: str,
        tmp_path: Path,
    ) -> None:
        """Without --clean a non-empty target is refused; with it the target's tables are replaced; a broken
        dump rolls everything back, the --clean drops too; the target's password is never printed."""
        dump = tmp_path / "onecode.dump"
        assert (await run_cli_async("backup", str(dump), env=cli_env)).returncode == 0
        target = psycopg.conninfo.make_conninfo(empty_database, password="s3cret-Passw0rd")
        first = await run_cli_async("restore", str(dump), "--target", target, env=cli_env)
        assert first.returncode == 0, first.stderr
        expected = table_counts(settings.database_url or "")
        assert table_counts(empty_database) == expected

        again = await run_cli_async("restore", str(dump), "--target", target, env=cli_env)
        assert again.returncode == 1
        assert "already holds" in again.stderr and "--clean" in again.stderr

        with psycopg.connect(empty_database, autocommit=True) as conn:
            conn.execute("INSERT INTO brands (slug, name, short_code) VALUES ('marker', 'Marker', 'MARKR')")
        broken = tmp_path / "broken.dump"
        broken.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
        failed = await run_cli_async("restore", str(broken), "--clean", "--target", target, env=cli_env)
        assert failed.returncode == 1
        assert "nothing was changed" in failed.stderr
        assert table_counts(empty_database)["brands"] == expected["brands"] + 1  # the marker is still there

        clean = await run_cli_async("restore", str(dump), "--clean", "--target", target, env=cli_env)
        assert clean.returncode == 0, clean.stderr
        assert table_counts(empty_database) == expected  # the marker is gone with the old tables
        for answer in (first, again, failed, clean):
            assert "s3cret-Passw0rd" not in answer.stdout + answer.stderr

    def test_backup_fails_clearly_and_writes_nothing_when_pg_dump_is_missing_or_fails(
        self, cli_env: dict[str, str], engines: Engines, database_url: str, tmp_path: Path
    ) -> None:
        """As a role that may not ask the server where its own tools are: no pg_dump on PATH, one older
        than the server, or one that fails; and a database that is not there. Each is exit 1 with the
        reason, and no file is left."""
        out = tmp_path / "out" / "onecode.dump"
        out.parent.mkdir()
        tools = tmp_path / "bin"
        tools.mkdir()
        stub = tools / "pg_dump"
        role = f"oc_reader_{engines.run_id}"
        with engines.admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            env = {
                **cli_env,
                "DATABASE_URL": psycopg.conninfo.make_conninfo(database_url, user=role),
                "PATH": str(tools),
            }
            missing = run_cli("backup", str(out), env=env)
            stub.write_text('#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n')
            stub.chmod(0o755)
            older = run_cli("backup", str(out), env=env)
            stub.write_text(
                '#!/bin/sh\nif [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 99.0"; exit 0; fi\n'
                'echo "pg_dump: error: query failed" >&2\nexit 1\n'
            )
            failing = run_cli("backup", str(out), env=env)
        finally:
            with engines.admin() as conn:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        assert missing.returncode == 1 and "no pg_dump of PostgreSQL" in missing.stderr, missing.stderr
        assert older.returncode == 1 and f"found {stub}: older" in older.stderr, older.stderr
        assert failing.returncode == 1 and "pg_dump failed" in failing.stderr, failing.stderr
        gone = engines.database_url(f"oc_missing_{engines.run_id}")
        absent = run_cli("backup", str(out), env={**cli_env, "DATABASE_URL": gone})
        assert absent.returncode == 1 and "does not exist" in absent.stderr
        assert list(out.parent.iterdir()) == []


def test_the_servers_own_client_tools_come_first(settings: Settings) -> None:
    """On the server's machine its own pg_dump is taken (the embedded 16 beside the machine's 15 on
    PATH), not whichever the PATH finds first."""
    conninfo = settings.database_url or ""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT setting FROM pg_config WHERE name = 'BINDIR'").fetchone()
    assert row is not None
    for tool in ("pg_dump", "pg_restore"):
        assert backups._pg_tool(tool, conninfo) == str(Path(row[0]) / tool)
