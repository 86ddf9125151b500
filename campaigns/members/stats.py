"""Member statistics, lifecycle stages, tiers and rule tags, kept fresh from the scan log and the ledger.

The scan path writes nothing member-wide (it must stay fast); instead a refresh, run every minute by each
worker's housekeeping (one at a time), recomputes the members touched since the last run, and once a day
every member, so that lifecycle stages age and tier downgrades fall due without any new scan.
Each refresh also writes the member events of what it found (see `campaigns.members.events`).
Each refresh re-reads a few minutes before its last mark: recomputing a member twice changes nothing,
and a scan committed late is still counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg import sql

from campaigns.members import events, imports, profiles, recompute, segments, tags
from service.db import fetch_all, fetch_one, planned_each_time
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

logger = logging.getLogger("onecode.members")
QUERIES = load_queries("campaigns.members.sql", "stats.sql")
# What the refresh's statements read, beside the scan log's partitions: analyzed by the refresh itself
# once they have doubled since their last analysis (see `outgrown_statistics`).
READ_TABLES = [
    "members", "member_stats", "member_devices", "points_ledger", "points_lots", "member_tags",
    "member_tier_changes", "member_lifecycle_changes", "segment_memberships", "member_events",
]  # fmt: skip
MIN_GROWTH_ROWS = 10_000
# Scans carry the time of their request, a few seconds at most before their group commit begins.
OVERLAP = dt.timedelta(minutes=1)
LONGEST_LOOKBACK = dt.timedelta(minutes=30)
# The members a refresh touched, as PostgreSQL's text of a uuid[] ('{...}'), or None for all: passed
# from statement to statement without becoming Python objects (in a promotion, hundreds of thousands a
# minute, in a process that serves scans: as objects they stalled its event loop for a second).
MemberIds = list[uuid.UUID] | str | None


async def analyze_outgrown(conn: AsyncConnection[Any], min_rows: int = MIN_GROWTH_ROWS) -> list[str]:
    """ANALYZE the tables the refresh reads that have doubled (by `min_rows` at least) since their last
    analysis, so that its statements are planned on today's sizes; returns their names."""
    found = await fetch_all(
        conn, QUERIES["outgrown_statistics"], {"tables": READ_TABLES, "min_rows": min_rows}, _Name
    )
    for table in found:
        await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*table.name.split("."))))
    return [table.name for table in found]


class RefreshReport(msgspec.Struct, frozen=True):
    ran: bool
    full: bool
    members: int
    tag_changes: int
    events: int = 0
    # Members erased by their brand's retention setting (daily runs only).
    erased: int = 0


class _Progress(msgspec.Struct, frozen=True):
    refreshed_until: dt.datetime
    full_refresh_on: dt.date


class _Locked(msgspec.Struct, frozen=True):
    locked: bool


class _Name(msgspec.Struct, frozen=True):
    name: str


class _Id(msgspec.Struct, frozen=True):
    id: uuid.UUID


class _Oldest(msgspec.Struct, frozen=True):
    started: dt.datetime | None


class _Touched(msgspec.Struct, frozen=True):
    ids: str


class _Count(msgspec.Struct, frozen=True):
    members: int


async def refresh(
    conn: AsyncConnection[Any], *, now: dt.datetime, full: bool = False, wait: bool = True
) -> RefreshReport:
    """Run inside one transaction. Another refresh running: wait for it, or with `wait=False` skip
    this round (ran=False), as the housekeeping loop does."""
    async with planned_each_time(conn):
        return await _refresh(conn, now=now, full=full, wait=wait)


async def _refresh(conn: AsyncConnection[Any], *, now: dt.datetime, full: bool, wait: bool) -> RefreshReport:
    lock = "lock_refresh" if wait else "try_lock_refresh"
    locked = await fetch_one(conn, QUERIES[lock], {}, _Locked)
    if locked is None or not locked.locked:
        return RefreshReport(ran=False, full=full, members=0, tag_changes=0)
    await analyze_outgrown(conn)
    progress = await fetch_one(conn, QUERIES["progress"], {}, _Progress)
    full = full or progress is None or progress.full_refresh_on < now.date()
    # The next refresh starts from here: no later than the oldest open transaction began, whose rows
    # (a long member import, say) commit with earlier times than this refresh could see. A session
    # left open for hours (idle in a transaction) must not make every refresh redo those hours.
    oldest = await fetch_one(conn, QUERIES["oldest_transaction"], {}, _Oldest)
    refreshed_until = now
    if oldest is not None and oldest.started is not None:
        refreshed_until = max(now - LONGEST_LOOKBACK, min(now, oldest.started))
    member_ids: MemberIds = None
    requests = await recompute.take(conn)
    for asked in requests:
        logger.info("recomputing every member: brand %s, %s", asked.brand_id, asked.reason)
    if not full and not requests:
        assert progress is not None
        touched = await fetch_one(
            conn, QUERIES["touched_members"], {"since": progress.refreshed_until - OVERLAP}, _Touched
        )
        member_ids = touched.ids if touched else "{}"
    params = {"member_ids": member_ids, "now": now}
    counted = await fetch_one(conn, QUERIES["refresh_stats"], params, _Count)
    refreshed = counted.members if counted is not None else 0
    if member_ids is None or member_ids:
        await conn.execute(QUERIES["refresh_tiers"], params)
    brand_ids = await _brands_with_rule_tags(conn)
    tag_changes = await tags.apply_rule_tags(conn, brand_ids, member_ids, now=now) if brand_ids else 0
    # Segments named by live campaigns, after the statistics and tags they filter on.
    await segments.refresh_memberships(conn, member_ids=member_ids, now=now)
    # Birthdays and expiring points are calendar facts: looked for once a day, with the full refresh.
    generated = await events.generate(conn, member_ids=member_ids, now=now, daily=full)
    # So is each brand's retention: members idle past it are erased.
    erased = await profiles.erase_inactive(conn, now=now) if full else 0
    if full:
        await imports.purge_rejected_cells(conn, now=now)
    await conn.execute(
        QUERIES["save_progress"],
        {
            "refreshed_until": refreshed_until,
            "full_refresh_on": now.date() if full else (progress.full_refresh_on if progress else now.date()),
        },
    )
    return RefreshReport(
        ran=True,
        full=full,
        members=refreshed,
        tag_changes=tag_changes,
        events=generated.events,
        erased=erased,
    )


async def _brands_with_rule_tags(conn: AsyncConnection[Any]) -> list[uuid.UUID]:
    return [b.id for b in await fetch_all(conn, QUERIES["brands_with_rule_tags"], {}, _Id)]
