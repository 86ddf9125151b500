"""Migrations apply to an empty database, idempotently, and refuse edited history."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from service.migrations import Migration, MigrationError, available_migrations, migrate
from tests.conftest import Engines


@pytest.fixture
def empty_database(engines: Engines) -> str:
    name = f"oc_empty_{engines.run_id}"
    with engines.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield engines.database_url(name)
    with engines.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class TestMigrations:
    def test_all_apply_to_an_empty_database_then_nothing_on_a_second_run(self, empty_database: str) -> None:
        """The first run applies every file in order; the second finds nothing to do."""
        expected = [m.version for m in available_migrations()]
        assert migrate(empty_database) == expected
        assert migrate(empty_database) == []
        with psycopg.connect(empty_database) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == expected

    def test_an_edited_migration_is_refused(self, empty_database: str) -> None:
        """Forward-only: a changed checksum for an applied version stops the run."""
        migrate(empty_database)
        with psycopg.connect(empty_database, autocommit=True) as conn:
            conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(empty_database)

    def test_versions_are_contiguous(self) -> None:
        """Files are numbered 1..N so the order is never ambiguous."""
        migrations = available_migrations()
        assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
        assert all(isinstance(m, Migration) and m.sql.strip() for m in migrations)

    def test_territories_naming_chongqings_counties_name_the_city(self, empty_database: str) -> None:
        """0031: CN-500200 (Chongqing's counties, accepted as a city until then) becomes CN-500100, once."""
        migrate(empty_database)
        chongqing = next(m for m in available_migrations() if m.version == 31)
        with psycopg.connect(empty_database, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO brands (slug, name, short_code) VALUES ('cq', 'CQ', 'CQCQ') RETURNING id"
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO distributors (brand_id, name, regions) VALUES"
                " (%(b)s, 'counties', ARRAY['CN-500200', 'CN-ZJ']),"
                " (%(b)s, 'both', ARRAY['CN-500100', 'CN-500200'])",
                {"b": row[0]},
            )
            conn.execute(chongqing.sql)
            found = conn.execute("SELECT name, regions FROM distributors ORDER BY name").fetchall()
        assert found == [("both", ["CN-500100"]), ("counties", ["CN-500100", "CN-ZJ"])]
