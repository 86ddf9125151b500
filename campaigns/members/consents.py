"""A member's own consents (PIPL): marketing texts and location analysis, given and withdrawn at will.

A consent is the time it was first given, or nothing. Enrolment records the first answers; afterwards the
member changes them here. What depends on a consent checks it when it acts: a text waiting to go out is
cancelled by the sender once marketing consent is gone (`claim_due` in sql/webhooks.sql reads the phone
only while the member consents); a scan's location is left out of the log by the group commit
(`record_scans`), and out of the scan's own anti-fraud checks by `LocationWithdrawals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
from psycopg_pool import PoolTimeout

from campaigns.members.errors import MemberErased, MemberNotFound
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger("onecode.members")

QUERIES = load_queries("campaigns.members.sql", "members.sql")


class ConsentsIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The member's choice: true gives a consent, false withdraws it; left out (or null), it stays."""

    marketing: bool | None = None
    location: bool | None = None


class Consents(msgspec.Struct, frozen=True):
    """When each consent was given; null when it was never given or was withdrawn."""

    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None


class Holder(msgspec.Struct, frozen=True):
    """The member a token speaks for now (the token's own, or the one it was merged into: a token issued
    before enrolment names the anonymous member), whether enrolled, and its consents."""

    member_id: uuid.UUID
    enrolled: bool
    consents: Consents


class ConsentChange(msgspec.Struct, frozen=True):
    # The member holding the consents: the token's own, or the one it was merged into.
    member_id: uuid.UUID
    before: Consents
    after: Consents
    enrolled: bool

    @property
    def changed(self) -> bool:
        return self.before != self.after


class _Row(msgspec.Struct, frozen=True):
    id: uuid.UUID
    erased_at: dt.datetime | None
    enrolled: bool
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None

    def consents(self) -> Consents:
        return Consents(self.consent_marketing_at, self.consent_location_at)


NONE_GIVEN = Consents(None, None)


async def current(conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID) -> Holder:
    """Who holds the consents now and what they are; none for a member not written yet. An erased member
    (or one merged into a member since erased) is MemberErased: a token may outlive what it named."""
    row = await fetch_one(conn, QUERIES["get_consents"], {"brand_id": brand_id, "member_id": member_id}, _Row)
    if row is not None and row.erased_at is not None:
        raise MemberErased(member_id)
    if row is None:
        return Holder(member_id, enrolled=False, consents=NONE_GIVEN)
    return Holder(row.id, enrolled=row.enrolled, consents=row.consents())


async def change(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, member_id: uuid.UUID, data: ConsentsIn
) -> ConsentChange:
    """Give or withdraw consents; asking for what already holds changes nothing (and writes nothing)."""
    params = {"brand_id": brand_id, "member_id": member_id}
    row = await fetch_one(conn, QUERIES["lock_consents"], params, _Row)
    if row is None:
        raise MemberNotFound(member_id)
    if row.erased_at is not None:
        raise MemberErased(member_id)
    before = row.consents()
    if not (
        _differs(data.marketing, before.consent_marketing_at)
        or _differs(data.location, before.consent_location_at)
    ):
        return ConsentChange(row.id, before, before, enrolled=row.enrolled)
    updated = await fetch_one(
        conn,
        QUERIES["set_consents"],
        {**params, "member_id": row.id, "marketing": data.marketing, "location": data.location},
        _Row,
    )
    assert updated is not None  # the row is locked
    return ConsentChange(row.id, before, updated.consents(), enrolled=updated.enrolled)


def _differs(wanted: bool | None, given_at: dt.datetime | None) -> bool:
    return wanted is not None and wanted != (given_at is not None)


class _Change(msgspec.Struct, frozen=True):
    id: uuid.UUID
    withdrawn: bool


class _Now(msgspec.Struct, frozen=True):
    now: dt.datetime


POLL_S = 5.0
# Changes are read again for this long after their time: a change stamped at its transaction's start and
# committed later is still seen (consent changes are short transactions).
CHANGE_MARGIN = dt.timedelta(minutes=1)


class LocationWithdrawals:
    """The members who withdrew location consent, as a worker's scan path needs them: without I/O.

    A scan that comes with a location from such a member (whatever device or app still sends one) is
    checked as if it came without: its location is not geocoded, nor kept in the code's Redis signals
    (region sketch, travel). Loaded whole once, then every POLL_S seconds the changes of the last
    minute (`members.location_consent_changed_at`); a member merged into one who withdrew counts as that
    member. The worker that takes a change applies it at once.
    """

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._withdrawn: set[uuid.UUID] = set()
        self._since: dt.datetime | None = None  # the database's time of the last read; None: load whole

    def withdrew(self, member_id: uuid.UUID) -> bool:
        return member_id in self._withdrawn

    def note(self, member_ids: list[uuid.UUID], *, withdrawn: bool) -> None:
        """A change this worker just committed, before the next poll brings it."""
        if withdrawn:
            self._withdrawn.update(member_ids)
        else:
            self._withdrawn.difference_update(member_ids)

    async def poll(self) -> None:
        async with self._pool.connection() as conn:
            now = await fetch_one(conn, QUERIES["database_now"], {}, _Now)
            assert now is not None
            if self._since is None:
                changes = await fetch_all(conn, QUERIES["location_withdrawn"], {}, _Change)
                self._withdrawn = set()
            else:
                since = self._since - CHANGE_MARGIN
                changes = await fetch_all(
                    conn, QUERIES["location_consent_changes"], {"since": since}, _Change
                )
        for change in changes:
            if change.withdrawn:
                self._withdrawn.add(change.id)
            else:
                self._withdrawn.discard(change.id)
        self._since = now.now

    async def follow(self, stopping: asyncio.Event) -> None:
        """Poll until `stopping` is set; a failure keeps the last copy."""
        while not stopping.is_set():
            try:
                await self.poll()
            except (psycopg.Error, PoolTimeout) as exc:
                logger.warning("location withdrawals poll failed: %s", exc)
            except Exception:  # a bug must not stop every later poll
                logger.exception("location withdrawals poll failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_S)
