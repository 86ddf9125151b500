"""Periodic housekeeping each worker runs: scan partitions ahead and past retention, old idempotency keys."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from campaigns.members import stats as member_stats
from campaigns.members import webhooks
from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from collections.abc import Sequence

    from campaigns.members.enrolment import SmsAdapter
    from campaigns.members.phones import MemberVault

logger = logging.getLogger("onecode.maintenance")
QUERIES = load_queries("antifraud.sql", "scans.sql")
INTERVAL_S = 3600.0
MEMBER_REFRESH_S = 60.0
EVENT_DELIVERY_S = 2.0
RETRY_S = 30.0
MONTHS_AHEAD = 2
SMS_OUTBOX_DAYS = 30


class ExpiredPartition(msgspec.Struct, frozen=True):
    """A monthly scan-log partition past retention: dropped (detached, then dropped), or not, and why."""

    parent: str
    partition_name: str
    range_start: dt.datetime
    range_end: dt.datetime
    # `skipped`: busy past the lock timeout, or referenced by a foreign key (the NOTICE says which).
    action: Literal["dropped", "would_drop", "skipped"]


class PartitionReport(msgspec.Struct, frozen=True):
    # Partitions created ahead (with dry_run: that would be).
    created: list[str]
    expired: list[ExpiredPartition]


class _Missing(msgspec.Struct, frozen=True):
    partition_name: str


async def maintain_partitions(
    conn: psycopg.AsyncConnection[Any],
    *,
    retention_months: int,
    dry_run: bool = False,
    months_ahead: int = MONTHS_AHEAD,
) -> PartitionReport:
    """Create the scan log's partitions ahead, then drop those past `retention_months` (0: keep all).

    Each step is its own transaction (a savepoint inside a caller's): the drop holds an exclusive lock
    on the scan tables, which must be released at once, not after whatever the caller does next.
    """
    async with conn.transaction():
        missing = await fetch_all(
            conn, QUERIES["missing_partitions"], {"months_ahead": months_ahead}, _Missing
        )
        if not dry_run:
            await conn.execute(QUERIES["ensure_partitions"], {"months_ahead": months_ahead})
    async with conn.transaction():
        expired = await fetch_all(
            conn,
            QUERIES["drop_expired_partitions"],
            {"retention_months": retention_months, "dry_run": dry_run},
            ExpiredPartition,
        )
    return PartitionReport(created=[m.partition_name for m in missing], expired=expired)


async def run_once(pool: AsyncConnectionPool, *, retention_months: int = 0) -> None:
    """Idempotent and cheap, so every worker may run it; the DDL is skipped when there is nothing to do.

    `retention_months` is the setting ONECODE_SCAN_RETENTION_MONTHS; the default 0 keeps every scan, so
    a caller that does not pass the setting never drops data.
    """
    async with pool.connection() as conn:
        report = await maintain_partitions(conn, retention_months=retention_months)
        async with conn.transaction():
            await conn.execute(QUERIES["purge_idempotency"])
            await conn.execute(QUERIES["purge_sms_outbox"], {"days": SMS_OUTBOX_DAYS})
    for name in report.created:
        logger.info("created scan partition %s", name)
    for part in report.expired:
        if part.action == "dropped":
            logger.info(
                "dropped scan partition %s (%s to %s): older than %d months",
                part.partition_name,
                part.range_start.date(),
                part.range_end.date(),
                retention_months,
            )
        else:
            logger.warning(
                "kept expired scan partition %s: busy or referenced, retried next run", part.partition_name
            )


async def refresh_members(conninfo: str, stopping: asyncio.Event) -> None:
    """Member statistics, lifecycle, tiers and rule tags: touched members every minute, all once a day."""
    while not stopping.is_set():
        pause = MEMBER_REFRESH_S
        try:
            # A connection of its own, closed after: the refresh sends and receives the ids of every
            # member a minute touched (megabytes in a promotion), and libpq keeps a connection's buffers
            # at the largest message it has carried. On pooled connections that was the worker's memory
            # rising a step at each refresh, up to pool size times a busy minute's list.
            async with (
                await psycopg.AsyncConnection.connect(
                    conninfo, connect_timeout=3, application_name="onecode-member-refresh"
                ) as conn,
                conn.transaction(),
            ):
                report = await member_stats.refresh(conn, now=dt.datetime.now(dt.UTC), wait=False)
            if report.ran and report.full:
                logger.info("refreshed all %d members (%d tag changes)", report.members, report.tag_changes)
        except (psycopg.Error, OSError) as exc:
            logger.warning("member refresh failed, retrying in %.0f s: %s", RETRY_S, exc)
            pause = RETRY_S
        except Exception:  # a bug (a stored rule that no longer decodes...) must not end the loop for good
            logger.exception("member refresh failed unexpectedly, retrying in %.0f s", RETRY_S)
            pause = RETRY_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)


async def deliver_member_events(
    pool: AsyncConnectionPool,
    stopping: asyncio.Event,
    *,
    master_keys: Sequence[bytes],
    vault: MemberVault,
    sms: SmsAdapter,
    allow_private: bool = False,
) -> None:
    """Member events to webhooks and by SMS: what is due every couple of seconds, at once while a backlog
    lasts. Every worker runs it; the claim (SKIP LOCKED, then a lease) gives each delivery to one."""
    async with webhooks.delivery_client() as http:
        while not stopping.is_set():
            pause = EVENT_DELIVERY_S
            try:
                async with pool.connection() as conn:
                    report = await webhooks.deliver_due(
                        conn,
                        http,
                        master_keys=master_keys,
                        vault=vault,
                        sms=sms,
                        now=dt.datetime.now(dt.UTC),
                        allow_private=allow_private,
                    )
                if report.claimed == webhooks.BATCH_SIZE:
                    pause = 0.0
            except (psycopg.Error, PoolTimeout) as exc:
                logger.warning("member event delivery failed, retrying in %.0f s: %s", RETRY_S, exc)
                pause = RETRY_S
            except Exception:  # as above: every tenant's deliveries depend on this loop staying up
                logger.exception("member event delivery failed unexpectedly, retrying in %.0f s", RETRY_S)
                pause = RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)


async def housekeeping(
    pool: AsyncConnectionPool, stopping: asyncio.Event, *, retention_months: int = 0
) -> None:
    while not stopping.is_set():
        pause = INTERVAL_S
        try:
            await run_once(pool, retention_months=retention_months)
        except (psycopg.Error, PoolTimeout) as exc:
            logger.warning("housekeeping failed, retrying in %.0f s: %s", RETRY_S, exc)
            pause = RETRY_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)
