"""The `onecode` command line: serve, migrate, tokens, brands, audit and the demo seed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec
import psycopg

from service import audit, auth, brands
from service.embedded import EmbeddedEngines
from service.logs import configure_logging
from service.migrations import migrate as apply_migrations
from service.models import BrandIn, Role, TokenIn
from service.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

CLI_ACTOR = "cli"
R = TypeVar("R")


@contextlib.contextmanager
def engines(settings: Settings) -> Iterator[Settings]:
    """Settings with concrete engine URLs: configured ones, or embedded ones started under ONECODE_HOME."""
    if settings.database_url and settings.redis_url:
        yield settings
        return
    embedded = EmbeddedEngines(settings.home)
    try:
        database_url = settings.database_url or embedded.start_postgres()
        redis_url = settings.redis_url or embedded.start_redis()
        yield settings.with_engines(database_url, redis_url)
    finally:
        embedded.stop()


def run_db(settings: Settings, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[R]]) -> R:
    """Run one transaction of async domain code from a synchronous command."""

    async def main() -> R:
        async with (
            await psycopg.AsyncConnection.connect(settings.database_url or "") as conn,
            conn.transaction(),
        ):
            return await work(conn)

    return asyncio.run(main())


def emit(value: Any, *, as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.encode(value).decode())
    else:
        for key, item in msgspec.to_builtins(value).items():
            click.echo(f"{key}: {item}")


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """OneCode: one signed code per item, scanned into members and rewards."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json and not os.isatty(2))
    ctx.obj = settings


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply pending database migrations."""
    with engines(settings) as ready:
        applied = apply_migrations(ready.database_url or "")
    click.echo(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default ONECODE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default ONECODE_PORT or 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default ONECODE_WORKERS or 1).")
@click.option("--migrate/--no-migrate", "run_migrations", default=None, help="Apply migrations first.")
@click.option("--demo", is_flag=True, help="Seed the demo brand first and print how to use it.")
@click.pass_obj
def serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    workers: int | None,
    run_migrations: bool | None,
    demo: bool,
) -> None:
    """Run the HTTP service (granian, ASGI)."""
    from granian import Granian  # noqa: PLC0415 - heavy import only for this command

    settings = msgspec.structs.replace(
        settings,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
    )
    with engines(settings) as ready:
        if run_migrations if run_migrations is not None else ready.auto_migrate:
            apply_migrations(ready.database_url or "")
        if demo:
            from service.demo import seed_demo  # noqa: PLC0415

            info = seed_demo(ready)
            click.echo("demo: " + msgspec.json.encode(info).decode())
        # Worker processes read their settings from the environment: hand them the concrete engines.
        os.environ["DATABASE_URL"] = ready.database_url or ""
        os.environ["REDIS_URL"] = ready.redis_url or ""
        click.echo(f"OneCode listening on http://{ready.host}:{ready.port} (OpenAPI at /schema)")
        Granian(
            "service.asgi:app_from_env",
            address=ready.host,
            port=ready.port,
            workers=ready.workers,
            interface="asgi",  # type: ignore[arg-type]
            factory=True,
            log_access=False,
            backlog=2048,
        ).serve()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def demo(settings: Settings, as_json: bool) -> None:
    """Seed a demo brand (idempotent) and print its URLs and an admin token."""
    from service.demo import seed_demo  # noqa: PLC0415

    with engines(settings) as ready:
        apply_migrations(ready.database_url or "")
        info = seed_demo(ready)
    if as_json:
        click.echo(msgspec.json.encode(info).decode())
    else:
        click.echo(msgspec.json.format(msgspec.json.encode(info)).decode())


@main.group()
def brand() -> None:
    """Manage brands (tenants)."""


@brand.command("create")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--loadtest", is_flag=True, help="Mark as a load-test brand (the load kit only seeds these).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def brand_create(settings: Settings, slug: str, name: str, loadtest: bool, as_json: bool) -> None:
    """Create a brand."""
    data = msgspec.convert({"slug": slug, "name": name, "is_loadtest": loadtest}, BrandIn)
    with engines(settings) as ready:
        created = run_db(ready, lambda conn: brands.create_brand(conn, actor=CLI_ACTOR, data=data))
    emit(created, as_json=as_json)


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--brand", "brand_ref", default=None, help="Brand slug or id (omit for platform_admin).")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="cli", show_default=True)
@click.option("--ttl-days", type=int, default=None)
@click.option("--distributor", "distributor_id", type=click.UUID, default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def token_create(
    settings: Settings,
    brand_ref: str | None,
    role: str,
    name: str,
    ttl_days: int | None,
    distributor_id: uuid.UUID | None,
    as_json: bool,
) -> None:
    """Create an API token; the secret is printed once."""
    data = TokenIn(role=Role(role), name=name, ttl_days=ttl_days, distributor_id=distributor_id)

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        brand_id = None if brand_ref is None else await _resolve_brand(conn, brand_ref)
        return await auth.create_token(
            conn, actor=CLI_ACTOR, brand_id=brand_id, data=data, default_ttl_days=settings.token_ttl_days
        )

    with engines(settings) as ready:
        issued = run_db(ready, work)
    emit(issued, as_json=as_json)


@token.command("revoke")
@click.argument("token_id", type=click.UUID)
@click.option("--brand", "brand_ref", default=None, help="Brand slug or id (omit for platform tokens).")
@click.pass_obj
def token_revoke(settings: Settings, token_id: uuid.UUID, brand_ref: str | None) -> None:
    """Revoke a token at once."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        brand_id = None if brand_ref is None else await _resolve_brand(conn, brand_ref)
        return await auth.revoke_token(conn, actor=CLI_ACTOR, brand_id=brand_id, token_id=token_id)

    with engines(settings) as ready:
        revoked = run_db(ready, work)
    click.echo(f"revoked {revoked.id} at {revoked.revoked_at}")


@main.group("audit")
def audit_group() -> None:
    """Inspect the audit log."""


@audit_group.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Recompute the audit hash chain; exit 1 if any entry was altered."""
    with engines(settings) as ready:
        result = run_db(ready, audit.verify_chain)
    emit(result, as_json=True)
    if not result.intact:
        raise SystemExit(1)


async def _resolve_brand(conn: psycopg.AsyncConnection[Any], ref: str) -> uuid.UUID:
    try:
        return (await brands.get_brand(conn, uuid.UUID(ref))).id
    except ValueError:
        found = await brands.get_brand_by_slug(conn, ref)
        if found is None:
            raise click.BadParameter(f"no brand with slug or id {ref!r}", param_hint="--brand") from None
        return found.id
