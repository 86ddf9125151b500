"""Backups: pg_dump a database into a private file, restore one in a single transaction, count the rows."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

import msgspec
import psycopg
from psycopg import sql

from service.queries import load_queries

QUERIES = load_queries("service.sql", "backups.sql")
# The tables whose rows `onecode restore` reports, when the restored schema has them.
RESTORE_COUNTED = (
    "schema_migrations",
    "brands",
    "products",
    "batches",
    "members",
    "code_claims",
    "scans",
    "counterfeit_scans",
    "campaigns",
    "points_ledger",
    "draws",
    "coupons",
    "audit_log",
)


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why and never holds a password."""


class Dump(msgspec.Struct, frozen=True, kw_only=True):
    """A backup file written in full."""

    size: int
    # What pg_dump printed on stderr although it succeeded (warnings), password masked; "" if nothing.
    messages: str


def safe_conninfo(conninfo: str) -> str:
    """What to print of a connection: everything but the password."""
    return _libpq(conninfo)[0]


def backup(conninfo: str, output_file: Path) -> Dump:
    """pg_dump (custom format) the database at `conninfo` into `output_file`, atomically, mode 0600."""
    pg_dump = _pg_tool("pg_dump", conninfo)
    return _dump(pg_dump, conninfo, output_file)


def restore(input_file: Path, target: str, *, clean: bool) -> dict[str, int]:
    """Restore a backup into an empty `target` (or, with `clean`, a wiped one) in one transaction.

    Returns the rows of each table of RESTORE_COUNTED present in the restored database.
    """
    with _connect(target) as conn:
        tables = [row[0] for row in conn.execute(QUERIES["public_tables"])]
    if tables and not clean:
        named = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")  # noqa: PLR2004 - a few names
        raise BackupError(
            f"{safe_conninfo(target)} already holds {len(tables)} table(s) ({named}): restore into an empty "
            "database, or pass --clean to drop everything in its schema public first"
        )
    pg_restore = _pg_tool("pg_restore", target)
    beside = Path(pg_restore).with_name("psql")
    psql = str(beside) if beside.is_file() else shutil.which("psql")
    if psql is None:
        raise BackupError("psql not found beside pg_restore nor on PATH: install the PostgreSQL client tools")
    _load_in_one_transaction(pg_restore, psql, input_file, target, clean=clean)
    counts: dict[str, int] = {}
    with _connect(target) as conn:
        conn.execute(QUERIES["analyze"])
        present = {row[0] for row in conn.execute(QUERIES["public_tables"])}
        for table in RESTORE_COUNTED:
            if table in present:
                query = sql.SQL(QUERIES["count_rows"]).format(table=sql.Identifier(table))
                row = conn.execute(query).fetchone()
                counts[table] = 0 if row is None else int(row[0])
    return counts


def _libpq(conninfo: str) -> tuple[str, str | None]:
    """The connection string without its password, and the password (handed to tools as PGPASSWORD)."""
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **params), None if password is None else str(password)


def _connect(conninfo: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot connect to {safe_conninfo(conninfo)}: {exc}") from None


def _pg_tool(name: str, conninfo: str) -> str:
    """pg_dump or pg_restore of the server's major version or newer (an older one refuses the server):
    the server's own when it is on this machine (an embedded engine's), else the one on PATH."""
    with _connect(conninfo) as conn:
        server_major = conn.info.server_version // 10000
        try:
            row = conn.execute(QUERIES["server_bindir"]).fetchone()
        except psycopg.errors.InsufficientPrivilege:  # pg_config is for superusers only
            row = None
    beside_server = None if row is None else str(Path(row[0]) / name)
    candidates = [path for path in (beside_server, shutil.which(name)) if path and Path(path).is_file()]
    for candidate in candidates:
        if _tool_major(candidate) >= server_major:
            return candidate
    found = f" (found {', '.join(candidates)}: older)" if candidates else ""
    raise BackupError(
        f"no {name} of PostgreSQL {server_major} or newer{found}: install the PostgreSQL client tools of "
        "the server's major version or newer (Debian/Ubuntu: apt install postgresql-client; macOS: brew "
        "install libpq)"
    )


def _tool_major(path: str) -> int:
    """The major version a client tool reports: `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0)` is 15."""
    try:
        printed = subprocess.run(  # noqa: S603 - argv of a tool we located, no shell
            [path, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):  # not runnable here (another machine's path): unusable
        return 0
    found = re.search(r"\(PostgreSQL\) (\d+)", printed)
    return int(found[1]) if found else 0


def _run_pg_tool(argv: list[str], conninfo: str, *, stdout: IO[bytes] | None = None) -> str:
    """Run a PostgreSQL client tool on `conninfo`: the password goes in its environment, not in argv.

    Returns what the tool printed on stderr although it succeeded, password masked.
    """
    dsn, password = _libpq(conninfo)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    command = [argv[0], "--no-password", f"--dbname={dsn}", *argv[1:]]
    try:
        done = subprocess.run(  # noqa: S603 - argv of a tool we located, no shell
            command, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, check=False
        )
    except OSError as exc:
        raise BackupError(f"could not run {argv[0]}: {exc}") from None
    detail = done.stderr.decode(errors="replace").strip()
    if password:
        detail = detail.replace(password, "***")
    if done.returncode != 0:
        tool = Path(argv[0]).name
        raise BackupError(f"{tool} failed with exit code {done.returncode}: {detail or 'no message'}")
    return detail


def _dump(pg_dump: str, conninfo: str, output_file: Path) -> Dump:
    """pg_dump into a private temporary file beside OUTPUT_FILE, renamed over it once complete."""
    target = output_file.absolute()
    try:
        # mkstemp creates the file with mode 0600 whatever the umask: the dump holds personal data.
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise BackupError(f"cannot write beside {target}: {exc}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            messages = _run_pg_tool([pg_dump, "--format=custom"], conninfo, stdout=handle)
            os.fsync(handle.fileno())
        temp.replace(target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)
    return Dump(size=target.stat().st_size, messages=messages)


def _load_in_one_transaction(
    pg_restore: str, psql: str, input_file: Path, target: str, *, clean: bool
) -> None:
    """pg_restore's script (--no-owner) into psql, inside BEGIN ... COMMIT that this process writes.

    COMMIT is sent only once pg_restore has exited cleanly; otherwise psql reaches the end of its input
    inside the transaction and the server rolls everything back, the --clean drops included. (Piping
    pg_restore straight into `psql --single-transaction` could commit a half-read dump.)
    """
    dsn, password = _libpq(target)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    # Notices (every object a CASCADE drops) are noise here, and an unread pipe could fill and stall psql.
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip()
    loader_argv = [psql, "--no-psqlrc", "--quiet", "--no-password", "-v", "ON_ERROR_STOP=1"]
    loader_argv += [f"--dbname={dsn}", "--file=-"]
    reader_argv = [pg_restore, "--no-owner", "--file=-", str(input_file)]
    with tempfile.TemporaryFile() as loader_err, tempfile.TemporaryFile() as reader_err:
        try:
            loader = subprocess.Popen(  # noqa: S603 - argv of tools we located, no shell
                loader_argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=loader_err
            )
        except OSError as exc:
            raise BackupError(f"could not run {psql}: {exc}") from None
        assert loader.stdin is not None
        try:
            reader = subprocess.Popen(  # noqa: S603 - argv of a tool we located, no shell
                reader_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=reader_err
            )
        except OSError as exc:
            loader.stdin.close()
            loader.wait()
            raise BackupError(f"could not run {pg_restore}: {exc}") from None
        assert reader.stdout is not None
        try:
            loader.stdin.write(b"BEGIN;\n")
            if clean:
                loader.stdin.write(QUERIES["clean_public_schema"].encode() + b"\n")
            shutil.copyfileobj(reader.stdout, loader.stdin, 1 << 20)
            if reader.wait() == 0:
                loader.stdin.write(b"COMMIT;\n")
        except BrokenPipeError:
            pass  # psql stopped at an error (ON_ERROR_STOP): its message is read below
        finally:
            reader.stdout.close()
            with contextlib.suppress(BrokenPipeError):
                loader.stdin.close()
            reader_rc, loader_rc = reader.wait(), loader.wait()
        if reader_rc != 0 or loader_rc != 0:
            # psql first: when it stops, pg_restore dies of the closed pipe, which says nothing.
            failed, code, stream = (
                ("psql", loader_rc, loader_err) if loader_rc else ("pg_restore", reader_rc, reader_err)
            )
            stream.seek(0)
            detail = stream.read().decode(errors="replace").strip()
            if password:
                detail = detail.replace(password, "***")
            raise BackupError(
                f"restore failed, nothing was changed ({failed} exit code {code}): {detail or 'no message'}"
            )
