"""The `onecode` command line: serve, migrate, tokens, brands, audit, campaigns and the demo seed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import msgspec
import psycopg

from antifraud import shipments
from antifraud.errors import AntifraudError
from campaigns import draws
from campaigns.errors import CampaignError
from campaigns.members import imports
from campaigns.members import stats as member_stats
from campaigns.members.errors import MembersError
from campaigns.members.phones import MemberVault
from codegen import batches, exports, keyring, products
from codegen.errors import CodegenError
from codegen.gtin import normalize_gtin
from codegen.keys import master_key_fingerprint
from codegen.models import MAX_BATCH_QUANTITY, BatchActivation, BatchIn, BatchStatus, ItemRange
from codegen.printing import QUERIES as CODEGEN_QUERIES
from codegen.printing import BatchPrinting, ExportFormat, load_printing, write_export
from loadtests.cli import loadtest
from service import audit, auth, backups, brands, maintenance, reseal
from service.embedded import EmbeddedEngines
from service.errors import ServiceError
from service.logs import configure_logging
from service.migrations import migrate as apply_migrations
from service.models import BrandIn, Gs1CompanyPrefixesIn, Role, TokenIn
from service.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

CLI_ACTOR = "cli"
BATCH_BRAND = CODEGEN_QUERIES["batch_brand"]
PRODUCT_BRAND_BY_GTIN = CODEGEN_QUERIES["product_brand_by_gtin"]
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


def run_db(
    settings: Settings,
    work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[R]],
    *,
    one_transaction: bool = True,
) -> R:
    """Run async domain code from a synchronous command: in one transaction, or (one_transaction=False)
    on an autocommit connection, for work that commits its own steps."""

    async def main() -> R:
        conninfo = settings.database_url or ""
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=not one_transaction) as conn:
            if not one_transaction:
                return await work(conn)
            async with conn.transaction():
                return await work(conn)

    return asyncio.run(main())


def emit(value: Any, *, as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.encode(value).decode())
    else:
        # Nested values as JSON, as --json writes them (not Python's repr: None, single quotes).
        for key, item in msgspec.to_builtins(value).items():
            shown = item if isinstance(item, str) else msgspec.json.encode(item).decode()
            click.echo(f"{key}: {shown}")


# What a command's input can run into (an unknown id, a batch in the wrong state): one line and exit
# status 1, as click reports a bad option, never a traceback.
_DOMAIN_ERRORS = (ServiceError, CodegenError, CampaignError, MembersError, AntifraudError)


# What a command meets on a database that missed this version's migrations.
_SCHEMA_BEHIND = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
)


class _Commands(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `onecode serve --help` only prints: it must not read settings (which creates a master key).
        ctx.meta["help_only"] = any(arg in ctx.help_option_names for arg in args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _DOMAIN_ERRORS as exc:
            raise click.ClickException(str(exc)) from None
        except _SCHEMA_BEHIND as exc:  # new code, old database: the command `serve` would have run first
            raise click.ClickException(
                f"the database's schema is older than this OneCode ({exc.diag.message_primary}): "
                "run `onecode migrate` first"
            ) from None


@click.group(cls=_Commands)
@click.pass_context
def main(ctx: click.Context) -> None:
    """OneCode: one signed code per item, scanned into members and rewards."""
    if ctx.meta["help_only"]:
        return
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None  # one line, not a traceback
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
        if ready.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # /metrics then sums every worker's samples instead of showing whichever worker answered.
            metrics_dir = ready.home / "metrics"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
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


@brand.command("gs1-prefixes")
@click.option("--brand", "brand_ref", required=True, help="Brand slug or id.")
@click.argument("prefixes", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def brand_gs1_prefixes(settings: Settings, brand_ref: str, prefixes: tuple[str, ...], as_json: bool) -> None:
    """Record the brand's GS1 company prefixes (replacing those recorded; none clears them): no other
    brand may then register a GTIN under them."""
    try:
        data = msgspec.convert({"prefixes": list(prefixes)}, Gs1CompanyPrefixesIn)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="PREFIXES") from None

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        brand_id = await _resolve_brand(conn, brand_ref)
        return await brands.set_gs1_company_prefixes(
            conn, actor=CLI_ACTOR, brand_id=brand_id, prefixes=data.prefixes
        )

    with engines(settings) as ready:
        updated = run_db(ready, work)
    emit(updated, as_json=as_json)


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


@main.group()
def campaign() -> None:
    """Inspect campaigns."""


@main.group()
def members() -> None:
    """Membership housekeeping."""


@members.command("refresh")
@click.option("--full", is_flag=True, help="Every member, not only those touched since the last refresh.")
@click.pass_obj
def members_refresh(settings: Settings, full: bool) -> None:
    """Recompute member statistics, lifecycle stages, tiers and rule tags now (the service does it every
    minute, and for every member once a day)."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> member_stats.RefreshReport:
        return await member_stats.refresh(conn, now=dt.datetime.now(dt.UTC), full=full)

    with engines(settings) as ready:
        emit(run_db(ready, work), as_json=True)


@members.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--brand", "brand_ref", required=True, help="Brand slug or id.")
@click.option("--dry-run", is_flag=True, help="Check and count; write nothing.")
@click.option("--key", "import_key", help="Import key (default: the file's SHA-256); the same key resumes.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def members_import(
    settings: Settings, csv_file: Path, brand_ref: str, dry_run: bool, import_key: str | None, as_json: bool
) -> None:
    """Import a member list (UTF-8 or GBK CSV: phone, name, birthday, points...). Chunks commit as they go:
    an interrupted import resumes where it stopped when run again, and a finished one imports nothing new."""
    data = csv_file.read_bytes()

    async def work(conn: psycopg.AsyncConnection[Any]) -> imports.ImportReport:
        brand_id = await _resolve_brand(conn, brand_ref)
        return await imports.run(
            conn,
            MemberVault(settings.all_master_keys),
            settings.master_key,
            brand_id,
            data,
            actor="cli",
            now=dt.datetime.now(dt.UTC),
            dry_run=dry_run,
            import_key=import_key,
            filename=csv_file.name,
        )

    with engines(settings) as ready:
        try:
            report = run_db(ready, work, one_transaction=False)
        except MembersError as exc:
            click.echo(f"{csv_file}: {exc}", err=True)
            raise SystemExit(1) from None
    if as_json:
        emit(report, as_json=True)
        return
    click.echo(
        f"{report.status}: {report.rows} rows, {report.created} created, {report.merged} merged, "
        f"{report.duplicates} duplicates, {report.rejected} rejected, {report.skipped} already done, "
        f"{report.points_credited} points credited"
    )
    for error in report.errors:
        click.echo(f"row {error.row}: {error.field}: {error.message}")


@campaign.command("verify-draws")
@click.argument("campaign_id", type=click.UUID)
@click.pass_obj
def campaign_verify_draws(settings: Settings, campaign_id: uuid.UUID) -> None:
    """Recompute every draw of an ended lucky draw from its revealed seed; exit 1 if any differs."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> draws.DrawAudit:
        return await draws.audit_draws(conn, campaign_id)

    with engines(settings) as ready:
        try:
            result = run_db(ready, work)
        except CampaignError as exc:
            # Not found, not ended yet, or a seed that does not match its published hash: nothing verified.
            click.echo(f"campaign {campaign_id}: cannot verify: {exc}", err=True)
            raise SystemExit(1) from None
    click.echo(
        f"campaign {campaign_id}: {result.checked} draw(s) checked, {len(result.mismatched)} mismatch(es)"
    )
    for scan_id in result.mismatched:
        click.echo(f"mismatch: scan {scan_id}")
    if result.mismatched:
        raise SystemExit(1)


@main.group()
def batch() -> None:
    """Issue batches of codes."""


@batch.command("create")
@click.option("--gtin", required=True, help="GTIN of the product (its brand follows from it).")
@click.option("--quantity", type=click.IntRange(1, MAX_BATCH_QUANTITY), required=True)
@click.option("--lot", default=None)
@click.option("--line", default=None, help="Production line.")
@click.option("--production-date", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--signed", is_flag=True, help="Also sign every code with Ed25519 (publicly verifiable).")
@click.option(
    "--activation",
    type=click.Choice(["on_shipment", "on_issue"]),
    default="on_shipment",
    show_default=True,
    help="Codes come alive when shipped (`onecode ship`), or at once.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def batch_create(
    settings: Settings,
    gtin: str,
    quantity: int,
    lot: str | None,
    line: str | None,
    production_date: dt.datetime | None,
    signed: bool,
    activation: BatchActivation,
    as_json: bool,
) -> None:
    """Reserve a batch of codes for the product with this GTIN (one row, however many codes)."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        brand_id = await _brand_of_gtin(conn, gtin)
        product = await products.get_product_by_gtin(conn, brand_id, gtin)
        data = BatchIn(
            product_id=product.id,
            quantity=quantity,
            lot=lot,
            line=line,
            production_date=production_date.date() if production_date else None,
            signed=signed,
            activation=activation,
        )
        return await batches.create_batch(
            conn, actor=CLI_ACTOR, brand_id=brand_id, data=data, master_key=settings.master_key
        )

    with engines(settings) as ready:
        created = run_db(ready, work)
    if as_json:
        click.echo(msgspec.json.encode({"batch_id": created.id, **msgspec.to_builtins(created)}).decode())
    else:
        emit(created, as_json=False)


@main.command()
@click.argument("batch_id", type=click.UUID)
@click.option("--distributor", "distributor_id", type=click.UUID, required=True)
@click.option("--start", type=click.IntRange(0), default=0, show_default=True, help="First position.")
@click.option("--stop", type=click.IntRange(1), default=None, help="Position after the last (default: all).")
@click.option("--reference", default=None, help="Delivery note or order number.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ship(
    settings: Settings,
    batch_id: uuid.UUID,
    distributor_id: uuid.UUID,
    start: int,
    stop: int | None,
    reference: str | None,
    as_json: bool,
) -> None:
    """Ship a batch's items (all, or --start..--stop) to a distributor: their codes come alive."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> shipments.Shipment:
        cur = await conn.execute(BATCH_BRAND, {"batch_id": batch_id})
        row = await cur.fetchone()
        if row is None:
            raise click.BadParameter(f"no batch {batch_id}", param_hint="BATCH_ID")
        brand_id: uuid.UUID = row[0]
        batch = await batches.get_batch(conn, brand_id, batch_id)
        data = shipments.ShipmentIn(
            distributor_id=distributor_id,
            reference=reference,
            items=[ItemRange(batch_id=batch_id, start=start, stop=stop or batch.quantity)],
        )
        shipped = await shipments.ship(
            conn, actor=CLI_ACTOR, brand_id=brand_id, data=data, now=dt.datetime.now(dt.UTC)
        )
        await audit.record(
            conn,
            actor=CLI_ACTOR,
            brand_id=brand_id,
            action="shipment.create",
            object_type="shipment",
            object_id=shipped.id,
            after={"distributor_id": distributor_id, "items": shipped.items, "reference": reference},
        )
        return shipped

    with engines(settings) as ready:
        try:
            shipped = run_db(ready, work)
        except CodegenError as exc:
            raise click.ClickException(str(exc)) from None
    emit(shipped, as_json=as_json)


@main.group()
def codes() -> None:
    """Print files of issued codes."""


@codes.command("export")
@click.argument("batch_id", type=click.UUID)
@click.option(
    "--format", "fmt", type=click.Choice([f.value for f in ExportFormat]), default="csv", show_default=True
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--start", type=click.IntRange(0), default=None, help="First position (resume an export).")
@click.option("--stop", type=click.IntRange(1), default=None, help="Position after the last one.")
@click.option("--password", default=None, help="Encrypt CSV/TXT into an AES-256 ZIP with this password.")
@click.pass_obj
def codes_export(
    settings: Settings,
    batch_id: uuid.UUID,
    fmt: str,
    out: Path,
    start: int | None,
    stop: int | None,
    password: str | None,
) -> None:
    """Write a batch's print file; shows progress and is audited like the API export."""
    export_format = ExportFormat(fmt)

    async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[BatchPrinting, int, int]:
        cur = await conn.execute(BATCH_BRAND, {"batch_id": batch_id})
        row = await cur.fetchone()
        if row is None:
            raise click.BadParameter(f"no batch {batch_id}", param_hint="BATCH_ID")
        brand_id = row[0]
        printing = await load_printing(conn, brand_id, batch_id, settings.all_master_keys)
        first, last = batches.check_range(printing.batch, start, stop)
        await audit.record(
            conn,
            actor=CLI_ACTOR,
            brand_id=brand_id,
            action="batch.export",
            object_type="batch",
            object_id=batch_id,
            after={"format": fmt, "start": first, "stop": last, "encrypted": bool(password)},
        )
        if printing.batch.status is BatchStatus.ISSUED:
            await batches.set_status(
                conn, actor=CLI_ACTOR, brand_id=brand_id, batch_id=batch_id, status=BatchStatus.EXPORTED
            )
        return printing, first, last

    with engines(settings) as ready:
        printing, first, last = run_db(ready, work)
    if export_format in {ExportFormat.CSV, ExportFormat.TXT} and password is None:
        resume_at = None
        if start and out.exists():
            [[(_, _, url)]] = printing.codes(settings.scan_domain, start - 1, start)
            resume_at = _resume_offset(out, export_format, url, start)
        with (
            click.progressbar(length=last - first, label=f"exporting {out.name}") as bar,
            out.open("r+b" if resume_at is not None else "wb") as handle,
        ):
            if resume_at is not None:
                handle.seek(resume_at)
                handle.truncate()
            codes_iter = printing.codes(settings.scan_domain, first, last)
            done = 0

            def progress(count: int) -> None:
                nonlocal done
                bar.update(count - done)
                done = count

            writer = exports.txt_chunks if export_format is ExportFormat.TXT else exports.csv_chunks
            extra: dict[str, Any] = (
                {} if export_format is ExportFormat.TXT else {"parent": printing.parents or None}
            )
            chunks = writer(codes_iter, progress=progress, **extra)
            if resume_at is not None and export_format is ExportFormat.CSV:
                chunks = _without_header(chunks)
            for chunk in chunks:
                handle.write(chunk)
    else:
        temp = write_export(printing, export_format, settings.scan_domain, first, last, password)
        shutil.move(temp, out)  # not Path.replace: the temporary directory may be another file system
    click.echo(f"wrote {last - first} codes to {out}")


def _resume_offset(out: Path, export_format: ExportFormat, last_url: str, start: int) -> int:
    """Where an interrupted print file goes on: after its last complete line, which must be the code at
    `start - 1` (a partial last line, cut off mid-write, is dropped and written again)."""
    data = out.read_bytes()
    end = data.rfind(b"\n") + 1
    last_line = data[data.rfind(b"\n", 0, end - 1) + 1 : end - 1].decode("utf-8", "replace")
    # A TXT line is the URL; a CSV line is `index,serial,url[,parent]`.
    written = last_line if export_format is ExportFormat.TXT else ",".join(last_line.split(",")[2:3])
    if end == 0 or written != last_url:
        raise click.BadParameter(
            f"{out} does not end with the code at position {start - 1}: give the --start that follows its "
            "last complete line, or another --out for a new file",
            param_hint="--start",
        )
    return end


def _without_header(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """CSV chunks for appending to a file that has its header already."""
    first = next(chunks, b"")
    yield first[first.index(b"\n") + 1 :] if b"\n" in first else b""
    yield from chunks


@main.group()
def keys() -> None:
    """Brand keys."""


@keys.command("rotate")
@click.option("--brand", "brand_ref", required=True, help="Brand slug or id.")
@click.pass_obj
def keys_rotate(settings: Settings, brand_ref: str) -> None:
    """Add a new key; new batches use it, older codes keep verifying."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> Any:
        brand_id = await _resolve_brand(conn, brand_ref)
        await keyring.current_key(conn, brand_id, settings.master_key)
        key = await keyring.rotate(conn, brand_id, settings.master_key)
        await audit.record(
            conn,
            actor=CLI_ACTOR,
            brand_id=brand_id,
            action="key.rotate",
            object_type="brand_key",
            object_id=f"{brand_id}:{key.key_id}",
            after={"key_id": key.key_id},
        )
        return key.key_id

    with engines(settings) as ready:
        key_id = run_db(ready, work)
    click.echo(f"brand {brand_ref}: key {key_id} is now current")


@keys.command("reseal")
@click.option("--dry-run", is_flag=True, help="Count what would move; write nothing.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=reseal.PAGE_ROWS, show_default=True)
@click.pass_obj
def keys_reseal(settings: Settings, dry_run: bool, batch_size: int) -> None:
    """Seal again under ONECODE_MASTER_KEY every value still under an ONECODE_OLD_MASTER_KEYS key."""

    async def work(conn: psycopg.AsyncConnection[Any]) -> list[reseal.ColumnReport]:
        reports = await reseal.reseal_all(
            conn, settings.all_master_keys, batch_size=batch_size, dry_run=dry_run
        )
        if not dry_run:
            async with conn.transaction():
                await audit.record(
                    conn,
                    actor=CLI_ACTOR,
                    brand_id=None,
                    action="master_key.reseal",
                    object_type="master_key",
                    object_id=master_key_fingerprint(settings.master_key).hex(),
                    after={r.column: r.resealed for r in reports},
                )
        return reports

    with engines(settings) as ready:
        reports = run_db(ready, work, one_transaction=False)
    for r in reports:
        moved = f"{r.to_reseal} to re-seal" if dry_run else f"{r.resealed} re-sealed"
        clashes = f", {r.conflicts} held by another member too (merge them)" if r.conflicts else ""
        click.echo(f"{r.column}: {moved}, {r.current} already current, {r.unreadable} unreadable{clashes}")
    # A dry run moves nothing; a real run leaves what changed under it meanwhile (the next run takes it).
    left = sum(r.to_reseal - (0 if dry_run else r.resealed) for r in reports)
    unreadable = sum(r.unreadable for r in reports)
    if left == 0 and unreadable == 0:
        click.echo("every sealed value is under the current master key: the old keys may be removed")
    else:
        click.echo(f"{left} value(s) still under an older key, {unreadable} unreadable: keep the old keys")
        if not dry_run:
            raise SystemExit(1)


@main.command()
@click.argument("output_file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def backup(settings: Settings, output_file: Path) -> None:
    """Dump the database with pg_dump (custom format) into OUTPUT_FILE: written atomically, mode 0600."""
    with engines(settings) as ready:
        conninfo = ready.database_url or ""
        try:
            dump = backups.backup(conninfo, output_file)
        except backups.BackupError as exc:
            raise click.ClickException(str(exc)) from None
    if dump.messages:
        click.echo(dump.messages, err=True)
    source = backups.safe_conninfo(conninfo)
    click.echo(f"wrote {dump.size} bytes to {output_file} from {source} (pg_dump custom format)")
    click.echo(
        "it holds personal data sealed under the master key: restoring it needs the same ONECODE_MASTER_KEY"
    )


@main.command()
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--target",
    default=None,
    envvar="ONECODE_RESTORE_TARGET",
    help="PostgreSQL URL to restore into (default: the configured database); with a password, pass it "
    "as ONECODE_RESTORE_TARGET or PGPASSWORD rather than on the command line.",
)
@click.option(
    "--clean", is_flag=True, help="First drop everything in the target's schema public (same transaction)."
)
@click.pass_obj
def restore(settings: Settings, input_file: Path, target: str | None, clean: bool) -> None:
    """Restore a `onecode backup` file in one transaction into an empty database (or --clean); count rows."""
    try:
        if target is None:
            with engines(settings) as ready:
                target = ready.database_url or ""
                counts = backups.restore(input_file, target, clean=clean)
        else:
            counts = backups.restore(input_file, target, clean=clean)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {input_file} into {backups.safe_conninfo(target)}")
    for table, count in counts.items():
        click.echo(f"{table}: {count} rows")


@main.command()
@click.option(
    "--retention-months",
    type=click.IntRange(min=0),
    default=None,
    help="Drop partitions of months that ended more than N months ago; 0 keeps every scan "
    "(default ONECODE_SCAN_RETENTION_MONTHS, else 0).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be created and dropped.")
@click.pass_obj
def partitions(settings: Settings, retention_months: int | None, dry_run: bool) -> None:
    """Create the scan log's monthly partitions ahead and drop those past retention (as workers do hourly)."""
    months = settings.scan_retention_months if retention_months is None else retention_months

    async def work(conn: psycopg.AsyncConnection[Any]) -> maintenance.PartitionReport:
        # Why a partition was kept (busy, or referenced by a foreign key) comes as a NOTICE.
        conn.add_notice_handler(lambda diag: click.echo(f"notice: {diag.message_primary}", err=True))
        return await maintenance.maintain_partitions(conn, retention_months=months, dry_run=dry_run)

    with engines(settings) as ready:
        # Each step commits on its own: the drop's exclusive lock on the scan log is released at once.
        report = run_db(ready, work, one_transaction=False)
    for name in report.created:
        click.echo(f"would create {name}" if dry_run else f"created {name}")
    for part in report.expired:
        span = f"{part.range_start:%Y-%m-%d} to {part.range_end:%Y-%m-%d}"
        done = {"dropped": "detached and dropped", "would_drop": "would detach and drop", "skipped": "kept"}
        reason = ": busy or referenced, see the notice" if part.action == "skipped" else ""
        click.echo(f"{done[part.action]} {part.partition_name} ({span}){reason}")
    if not report.created and not report.expired:
        click.echo("nothing to create or drop")
    click.echo(f"retention: {months} month(s)" if months else "retention: none (every scan is kept)")


async def _brand_of_gtin(conn: psycopg.AsyncConnection[Any], gtin: str) -> uuid.UUID:
    try:
        normalized = normalize_gtin(gtin)
    except CodegenError as exc:
        raise click.BadParameter(str(exc), param_hint="--gtin") from None
    cur = await conn.execute(PRODUCT_BRAND_BY_GTIN, {"gtin": normalized})
    row = await cur.fetchone()
    if row is None:
        raise click.BadParameter(f"no product has GTIN {gtin}", param_hint="--gtin")
    brand_id: uuid.UUID = row[0]
    return brand_id


async def _resolve_brand(conn: psycopg.AsyncConnection[Any], ref: str) -> uuid.UUID:
    try:
        return (await brands.get_brand(conn, uuid.UUID(ref))).id
    except ValueError:
        found = await brands.get_brand_by_slug(conn, ref)
        if found is None:
            raise click.BadParameter(f"no brand with slug or id {ref!r}", param_hint="--brand") from None
        return found.id


# The load kit's commands (locust itself is imported only by the processes `loadtest run` starts).
main.add_command(loadtest)
