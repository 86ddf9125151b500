"""Shared fixtures: real PostgreSQL and Redis (machine servers or embedded), a fresh database per test."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import redis
from litestar.testing import AsyncTestClient
from psycopg import sql

from service import auth, brands
from service.app import create_app
from service.migrations import migrate
from service.models import BrandIn, Role, TokenIn
from service.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from litestar import Litestar

REPO = Path(__file__).resolve().parent.parent
_test_numbers = itertools.count()


class Engines:
    """Where the test engines live: an admin conninfo, a template database and a Redis URL."""

    def __init__(self, admin_url: str, redis_url: str) -> None:
        self.admin_url = admin_url
        self.redis_url = redis_url
        self.run_id = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.template = f"oc_tpl_{self.run_id}"

    def database_url(self, dbname: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=dbname)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)


@pytest.fixture(scope="session")
def engines() -> Iterator[Engines]:
    """TEST_DATABASE_URL / TEST_REDIS_URL when set (CI), else engines embedded under .onecode/test-engines."""
    embedded = None
    admin_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not admin_url or not redis_url:
        from service.embedded import EmbeddedEngines

        embedded = EmbeddedEngines(
            Path(os.environ.get("ONECODE_TEST_HOME", REPO / ".onecode" / "test-engines"))
        )
        admin_url = admin_url or embedded.start_postgres()
        redis_url = redis_url or embedded.start_redis()
    found = Engines(admin_url, redis_url)
    with found.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(found.template)))
    migrate(found.database_url(found.template))
    try:
        yield found
    finally:
        with found.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(found.template))
            )
        if embedded is not None:
            embedded.stop()


@contextlib.contextmanager
def cloned_database(engines: Engines, name: str) -> Iterator[str]:
    """A database cloned from the migrated template, dropped afterwards."""
    with engines.admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(engines.template)
            )
        )
    try:
        yield engines.database_url(name)
    finally:
        with engines.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(engines: Engines) -> Iterator[str]:
    """A database of its own for each test, cloned from the migrated template."""
    with cloned_database(engines, f"oc_t_{engines.run_id}_{next(_test_numbers)}") as url:
        yield url


@pytest.fixture
def redis_prefix(engines: Engines) -> Iterator[str]:
    """A Redis key prefix of its own for each test; its keys are deleted afterwards."""
    prefix = f"t:{engines.run_id}:{next(_test_numbers)}:"
    yield prefix
    client = redis.Redis.from_url(engines.redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def settings(database_url: str, redis_prefix: str, engines: Engines, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=engines.redis_url,
        redis_prefix=redis_prefix,
        home=tmp_path / "home",
        master_key=secrets.token_bytes(32),
        scan_domain="scan.example.com",
        # The webhook tests run their receivers on this machine.
        webhook_private_targets=True,
        pool_min_size=1,
        pool_max_size=8,
        log_json=False,
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A direct autocommit connection for arranging and inspecting data beside the app."""
    async with await psycopg.AsyncConnection.connect(settings.database_url or "", autocommit=True) as conn:
        yield conn


class Tenant:
    """A brand with a token per role, ready to call the API."""

    def __init__(self, brand_id: uuid.UUID, slug: str, tokens: dict[Role, str]) -> None:
        self.brand_id = brand_id
        self.slug = slug
        self.tokens = tokens

    def headers(self, role: Role = Role.BRAND_ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


async def make_tenant(conn: psycopg.AsyncConnection[Any], slug: str) -> Tenant:
    brand = await brands.create_brand(conn, actor="test", data=BrandIn(slug=slug, name=slug.title()))
    tokens: dict[Role, str] = {}
    for role in Role:
        if role in {Role.PLATFORM_ADMIN, Role.DISTRIBUTOR}:
            continue
        issued = await auth.create_token(
            conn,
            actor="test",
            brand_id=brand.id,
            data=TokenIn(role=role, name=role.value),
            default_ttl_days=1,
        )
        tokens[role] = issued.secret
    return Tenant(brand.id, slug, tokens)


@pytest.fixture
async def tenant_a(db: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(db, "brand-a")


@pytest.fixture
async def tenant_b(db: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(db, "brand-b")


@pytest.fixture
async def platform_token(db: psycopg.AsyncConnection[Any]) -> str:
    issued = await auth.create_token(
        db,
        actor="test",
        brand_id=None,
        data=TokenIn(role=Role.PLATFORM_ADMIN, name="root"),
        default_ttl_days=1,
    )
    return issued.secret
