"""Scan-log partitions: created two months ahead, and dropped once their month is past retention."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import secrets
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from service import maintenance
from service.db import make_pool
from service.settings import Settings, SettingsError

if TYPE_CHECKING:
    from pathlib import Path

PARENTS = ("scans", "counterfeit_scans")


async def month_start(db: psycopg.AsyncConnection[Any], months_from_now: int) -> dt.date:
    cur = await db.execute(
        "SELECT (date_trunc('month', now()) + make_interval(months => %s))::date", (months_from_now,)
    )
    row = await cur.fetchone()
    assert row is not None
    start: dt.date = row[0]
    return start


async def add_month(db: psycopg.AsyncConnection[Any], parent: str, months_from_now: int) -> str:
    """A monthly partition named as ensure_scan_partitions names them, with one row in it."""
    start = await month_start(db, months_from_now)
    end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    name = f"{parent}_{start:%Y%m}"
    await db.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Identifier(parent), sql.Literal(start), sql.Literal(end)
        )
    )
    at = dt.datetime.combine(start, dt.time(12), tzinfo=dt.UTC) + dt.timedelta(days=3)
    if parent == "scans":
        await db.execute(
            "INSERT INTO scans (id, scanned_at, brand_id, product_id, batch_id, key_id, code_index, verdict,"
            " scan_number, device_id) VALUES (%s, %s, %s, %s, %s, 0, 7, 'genuine_first', 1, 'device-old-1')",
            (uuid.uuid4(), at, uuid.uuid4(), uuid.uuid4(), uuid.uuid4()),
        )
    else:
        await db.execute(
            "INSERT INTO counterfeit_scans (id, scanned_at, outcome, code, device_id)"
            " VALUES (%s, %s, 'bad_tag', 'https://x.example/C/ABCD/XYZ', 'device-old-1')",
            (uuid.uuid4(), at),
        )
    return name


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


async def partitions(db: psycopg.AsyncConnection[Any]) -> set[str]:
    cur = await db.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits"
        " WHERE inhparent IN ('scans'::regclass, 'counterfeit_scans'::regclass)"
    )
    return {row[0] for row in await cur.fetchall()}


async def months(db: psycopg.AsyncConnection[Any], *offsets: int) -> set[str]:
    return {f"{parent}_{await month_start(db, n):%Y%m}" for n in offsets for parent in PARENTS}


class TestRetention:
    async def test_a_worker_drops_months_past_retention_and_keeps_the_rest(
        self, settings: Settings, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Months that ended 24 months ago or earlier go, rows and all; the month after that one stays."""
        # Month -25 ended when month -24 began: 24 months before this month began, so at least 24 months ago.
        old = {await add_month(db, parent, n) for parent in PARENTS for n in (-30, -25)}
        kept = {await add_month(db, parent, n) for parent in PARENTS for n in (-24, -12)}
        pool = make_pool(settings)
        await pool.open()
        try:
            await maintenance.run_once(pool, retention_months=24)
        finally:
            await pool.close()
        left = await partitions(db)
        assert not old & left
        assert kept | await months(db, 0, 1, 2) <= left
        cur = await db.execute(
            "SELECT (SELECT count(*) FROM scans), (SELECT count(*) FROM counterfeit_scans),"
            " (SELECT count(*) FROM pg_class WHERE relname = ANY(%s))",
            (sorted(old),),
        )
        assert await cur.fetchone() == (2, 2, 0)  # the kept months' rows; the old tables are gone

    async def test_zero_keeps_every_month(self, db: psycopg.AsyncConnection[Any]) -> None:
        """Retention 0 (ONECODE_SCAN_RETENTION_MONTHS=0) drops nothing, however old."""
        old = {await add_month(db, parent, -120) for parent in PARENTS}
        report = await maintenance.maintain_partitions(db, retention_months=0)
        assert report.expired == []
        assert old <= await partitions(db)

    async def test_dry_run_names_what_would_go_and_changes_nothing(
        self, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """--dry-run names the expired months and the missing ones ahead; no table is made or dropped."""
        old = await add_month(db, "scans", -30)
        ahead = f"scans_{await month_start(db, 2):%Y%m}"
        await db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(ahead)))
        before = await partitions(db)
        report = await maintenance.maintain_partitions(db, retention_months=24, dry_run=True)
        assert [(p.partition_name, p.action) for p in report.expired] == [(old, "would_drop")]
        assert report.created == [ahead]
        assert await partitions(db) == before

    async def test_a_partition_a_foreign_key_references_is_kept(
        self, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Nothing references the scan log today; if something did, its old months would be skipped."""
        old = await add_month(db, "scans", -30)
        await db.execute(
            "CREATE TABLE scan_notes (scan_id uuid, scanned_at timestamptz,"
            " FOREIGN KEY (scan_id, scanned_at) REFERENCES scans (id, scanned_at))"
        )
        report = await maintenance.maintain_partitions(db, retention_months=24)
        assert [(p.partition_name, p.action) for p in report.expired] == [(old, "skipped")]
        assert old in await partitions(db)

    async def test_a_busy_scan_table_is_left_for_the_next_run(
        self, settings: Settings, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Behind a long reader of the scan log the drop gives up after 1 s, so scans queue no longer."""
        old = await add_month(db, "scans", -30)
        async with await psycopg.AsyncConnection.connect(settings.database_url or "") as reader:
            await reader.execute("SELECT count(*) FROM scans")  # holds its lock until the transaction ends
            started = asyncio.get_running_loop().time()
            report = await maintenance.maintain_partitions(db, retention_months=24)
            waited = asyncio.get_running_loop().time() - started
        assert [(p.partition_name, p.action) for p in report.expired] == [(old, "skipped")]
        assert waited < 3  # lock_timeout is 1 s
        again = await maintenance.maintain_partitions(db, retention_months=24)
        assert [(p.partition_name, p.action) for p in again.expired] == [(old, "dropped")]


class TestAhead:
    async def test_this_month_and_the_next_two_exist_after_a_run(
        self, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Missing months ahead are created for both scan tables, and the report names them."""
        gone = await months(db, 1, 2)
        for name in gone:
            await db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        report = await maintenance.maintain_partitions(db, retention_months=24)
        assert set(report.created) == gone
        assert await months(db, 0, 1, 2) <= await partitions(db)
        again = await maintenance.maintain_partitions(db, retention_months=24)
        assert again.created == []


class TestCommand:
    async def test_onecode_partitions_dry_run_then_for_real(
        self, settings: Settings, db: psycopg.AsyncConnection[Any], tmp_path: Path
    ) -> None:
        """`onecode partitions --dry-run` says what it would do; without it, does it and says so."""
        old = await add_month(db, "counterfeit_scans", -40)
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "ONECODE_HOME": str(tmp_path / "home"),
            "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(settings.master_key).decode(),
            "ONECODE_LOG_JSON": "false",
        }
        command = [sys.executable, "-m", "service", "partitions", "--retention-months", "36"]
        dry = await asyncio.to_thread(run, [*command, "--dry-run"], env)
        assert dry.returncode == 0, dry.stderr
        assert f"would detach and drop {old} (" in dry.stdout
        assert old in await partitions(db)
        done = await asyncio.to_thread(run, command, env)
        assert done.returncode == 0, done.stderr
        assert f"detached and dropped {old} (" in done.stdout
        assert "retention: 36 month(s)" in done.stdout
        assert old not in await partitions(db)


class TestSetting:
    def test_retention_is_read_from_the_environment(self, tmp_path: Path) -> None:
        """ONECODE_SCAN_RETENTION_MONTHS: 0 (keep everything) by default, a negative value is refused."""
        env = {
            "ONECODE_HOME": str(tmp_path),
            "ONECODE_MASTER_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        }
        assert Settings.from_env(env).scan_retention_months == 0
        assert Settings.from_env({**env, "ONECODE_SCAN_RETENTION_MONTHS": "24"}).scan_retention_months == 24
        with pytest.raises(SettingsError, match="ONECODE_SCAN_RETENTION_MONTHS"):
            Settings.from_env({**env, "ONECODE_SCAN_RETENTION_MONTHS": "-1"})
