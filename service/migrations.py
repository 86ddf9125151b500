"""Forward-only schema migrations: numbered `.sql` files applied in order under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from importlib import resources

import msgspec
import psycopg

logger = logging.getLogger("onecode.migrations")

# Any constant works; it only has to be the same for every OneCode process sharing a database.
_MIGRATION_LOCK_ID = 0x0C0DE_0001
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The migration files and the database disagree (a file changed after it was applied)."""


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """Every migration shipped in `service/schema`, ordered by version."""
    found = sorted(
        (
            Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8"))
            for entry in resources.files("service.schema").iterdir()
            if (match := _FILENAME.match(entry.name))
        ),
        key=lambda m: m.version,
    )
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


def migrate(conninfo: str) -> list[int]:
    """Apply pending migrations; return the versions applied. Safe to run from many processes at once."""
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for migration in available_migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} changed after it was "
                            "applied; migrations are forward-only: add a new file instead"
                        )
                    continue
                with conn.transaction():
                    # Migration files ship inside the package; they are trusted SQL, not input.
                    conn.execute(migration.sql)  # trusted: shipped in the package
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                logger.info("applied migration %04d_%s", migration.version, migration.name)
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied_now
