"""The durable side of a scan: claims, members and the scan log, written in group commits.

Concurrent requests hand their scan to one writer per process, which commits everything that queued
up while the previous transaction ran in a single transaction, then wakes each request. A request
answers only after its rows are committed, so an acknowledged scan is never lost, and PostgreSQL (the
`code_claims` primary key) alone decides which scan of a code is the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg

from antifraud.clones import NO_RISK, Risk
from antifraud.errors import StorageUnavailable
from campaigns.book import Award, RewardItem
from codegen.registry import CodeFacts
from service.ids import uuid7
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection, AsyncCursor

logger = logging.getLogger("onecode.scanlog")
QUERIES = load_queries("antifraud.sql", "scans.sql")
# The rewards of a group commit are decided in its transaction by the campaigns' award statement.
AWARD_QUERIES = load_queries("campaigns.sql", "book.sql")


class ScanRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A genuine code's scan, as the request hands it to the writer."""

    scan_id: uuid.UUID
    scanned_at: dt.datetime
    facts: CodeFacts
    device_id: str
    # The member named by a valid member token; None means "find or create by device".
    member_id: uuid.UUID | None
    member_enrolled: bool = False
    ip_prefix: str | None = None
    lat: float | None = None
    lng: float | None = None
    ua_family: str | None = None
    # Where the scan happened (ISO 3166-2, see antifraud.regions), whom the item was shipped to, and
    # whether that place is outside the distributor's territory.
    region: str | None = None
    # In China, the city when known (`CN-330100`, antifraud.divisions).
    city: str | None = None
    distributor_id: uuid.UUID | None = None
    diverted: bool = False
    # The code's clone risk after this scan (antifraud.clones): a suspect scan is logged and flagged.
    risk: Risk = NO_RISK
    # The campaigns that may reward this scan (see campaigns.book); PostgreSQL decides what they give.
    rewards: list[RewardItem] = []


class ScanOutcome(msgspec.Struct, frozen=True, kw_only=True):
    first: bool
    scan_count: int
    first_scanned_at: dt.datetime
    member_id: uuid.UUID
    member_enrolled: bool
    member_created: bool
    points_balance: int
    awards: list[Award] = []


class UnactivatedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A genuine code scanned before any shipment activated it: logged as `not_activated`, nothing more."""

    scan_id: uuid.UUID
    scanned_at: dt.datetime
    facts: CodeFacts
    device_id: str
    ip_prefix: str | None = None
    lat: float | None = None
    lng: float | None = None
    ua_family: str | None = None
    region: str | None = None


class CounterfeitRecord(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: uuid.UUID
    scanned_at: dt.datetime
    claimed_brand_id: uuid.UUID | None
    outcome: str
    code: str
    device_id: str
    ip_prefix: str | None = None
    lat: float | None = None
    lng: float | None = None
    ua_family: str | None = None
    region: str | None = None


class _ScanRow(msgspec.Struct, frozen=True, kw_only=True):
    """One scan as `record_scans` reads it from its JSON parameter."""

    seq: int
    scan_id: uuid.UUID
    scanned_at: dt.datetime
    brand_id: uuid.UUID
    product_id: uuid.UUID
    batch_id: uuid.UUID
    key_id: int
    code_index: int
    device_id: str
    member_id: uuid.UUID | None
    enrolled: bool
    candidate_id: uuid.UUID | None
    ip_prefix: str | None
    lat: float | None
    lng: float | None
    ua_family: str | None
    distributor_id: uuid.UUID | None
    region: str | None
    city: str | None
    diverted: bool
    suspect: bool
    risk_score: int
    risk_reasons: str


class _AwardRow(RewardItem, frozen=True, kw_only=True):
    """A reward item as `award_scan_rewards` reads it: with its scan's identity and place in the batch."""

    seq: int
    scan_id: uuid.UUID
    scanned_at: dt.datetime
    brand_id: uuid.UUID
    key_id: int
    code_index: int


_encode_rows = msgspec.json.Encoder().encode


class Idempotency(msgspec.Struct, frozen=True):
    """Store the response under (device, key) in the same transaction as the scan's effects."""

    key: str
    request_hash: bytes
    render: Callable[[ScanOutcome], bytes]


class _Pending:
    __slots__ = ("future", "idempotency", "record")

    def __init__(
        self,
        record: ScanRecord | UnactivatedRecord | CounterfeitRecord,
        idempotency: Idempotency | None,
        future: asyncio.Future[Any],
    ) -> None:
        self.record = record
        self.idempotency = idempotency
        self.future = future


IDLE_CHECK_S = 1.0


class _Lane:
    """One writer connection. Several lanes overlap: while one waits for its commit, another writes."""

    def __init__(self) -> None:
        self.conn: AsyncConnection[Any] | None = None
        self.last_used = 0.0
        # Set when another lane lost its connection: an outage usually takes every connection with it.
        self.suspect = False


class ScanWriter:
    """One per process. `record()` returns once the scan is committed, with PostgreSQL's verdict.

    `lanes` transactions run at once, each taking everything queued when it starts. Every statement
    handles its rows in key order, so concurrent lanes lock rows in one order and cannot deadlock.
    """

    def __init__(
        self, conninfo: str, *, lanes: int = 3, max_batch: int = 512, connect_timeout_s: float = 2.0
    ) -> None:
        self._conninfo = conninfo
        self._lanes = [_Lane() for _ in range(lanes)]
        self._max_batch = max_batch
        self._connect_timeout_s = connect_timeout_s
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None asks one lane to stop
        self._tasks: list[asyncio.Task[None]] = []
        self._awarding = asyncio.Lock()
        self.batches_written = 0
        self.scans_written = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(lane), name=f"scan-writer-{n}")
            for n, lane in enumerate(self._lanes)
        ]

    async def stop(self) -> None:
        """Finish what is queued, then close; a lane is never cancelled in the middle of a commit."""
        for _ in self._tasks:
            self._queue.put_nowait(None)
        await asyncio.gather(*self._tasks)
        for lane in self._lanes:
            if lane.conn is not None:
                await lane.conn.close()

    async def record(self, record: ScanRecord, idempotency: Idempotency | None = None) -> ScanOutcome:
        future: asyncio.Future[ScanOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(record, idempotency, future))
        return await future

    async def record_unactivated(self, record: UnactivatedRecord) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(record, None, future))
        await future

    async def record_counterfeit(self, record: CounterfeitRecord) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(record, None, future))
        await future

    async def _run(self, lane: _Lane) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            if isinstance(first.record, ScanRecord) and first.record.rewards:
                # Rewarding transactions queue on their campaigns' row locks in PostgreSQL anyway: take
                # turns here instead, so that each takes everything that queued meanwhile (a bigger
                # batch for the same serialised work) and no lane idles holding a connection on a lock.
                async with self._awarding:
                    batch, stopping = self._take_batch(first)
                    await self._commit_batch(lane, batch)
            else:
                batch, stopping = self._take_batch(first)
                await self._commit_batch(lane, batch)

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        """The first scan and everything queued meanwhile: no timer needed. True = stop after."""
        batch = [first]
        while len(batch) < self._max_batch and not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is None:
                return batch, True
            batch.append(queued)
        return batch, False

    async def _commit_batch(self, lane: _Lane, batch: list[_Pending]) -> None:
        """Write one batch and wake its requests with their outcome, or with the reason it failed."""
        results: list[ScanOutcome | None] = []
        failure: BaseException | None = None
        try:
            results = await self._write_retrying_deadlock(lane, batch)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            logger.warning("scan batch of %d failed: %s", len(batch), exc)
            await self._drop_connection(lane)
            for other in self._lanes:
                other.suspect = True
            failure = StorageUnavailable("the scan log is unavailable")
        except psycopg.Error as exc:
            if len(batch) > 1:
                # The database refused what one of the batch's scans holds (a bug in our checks): the
                # others must not fail with it. Each is written alone; only the culprit's request fails.
                logger.warning("scan batch of %d refused (%s): writing its scans one by one", len(batch), exc)
                for pending in batch:
                    await self._commit_batch(lane, [pending])
                return
            logger.exception("a scan was refused by the database")
            failure = exc
        except Exception as exc:  # a bug must not kill the writer and strand every later request
            logger.exception("scan batch of %d failed unexpectedly", len(batch))
            failure = exc
        for n, pending in enumerate(batch):
            if pending.future.done():
                continue
            if failure is not None:
                pending.future.set_exception(failure)
            else:
                pending.future.set_result(results[n])

    async def _write_retrying_deadlock(self, lane: _Lane, batch: list[_Pending]) -> list[ScanOutcome | None]:
        try:
            return await self._write(lane, batch)
        except psycopg.errors.DeadlockDetected:
            # Key ordering makes this rare (only another writer, e.g. enrolment, can cross us).
            return await self._write(lane, batch)

    async def _connection(self, lane: _Lane) -> AsyncConnection[Any]:
        idle = time.monotonic() - lane.last_used
        lane.last_used = time.monotonic()
        if lane.conn is not None and not lane.conn.closed and (lane.suspect or idle > IDLE_CHECK_S):
            lane.suspect = False
            # A lane that sat idle may hold a connection the server dropped (restart, failover): check
            # it before trusting a batch to it, instead of failing that batch with a 503.
            try:
                await lane.conn.execute("SELECT 1")
            except psycopg.Error:
                await self._drop_connection(lane)
        if lane.conn is None or lane.conn.closed:
            lane.conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                connect_timeout=max(1, int(self._connect_timeout_s)),
                application_name="onecode-scans",
                autocommit=True,
            )
        return lane.conn

    async def _drop_connection(self, lane: _Lane) -> None:
        if lane.conn is not None:
            with contextlib.suppress(Exception):
                await lane.conn.close()
        lane.conn = None

    async def _write(self, lane: _Lane, batch: list[_Pending]) -> list[ScanOutcome | None]:
        scans = [p for p in batch if isinstance(p.record, ScanRecord)]
        fakes = [p.record for p in batch if isinstance(p.record, CounterfeitRecord)]
        leaks = [p.record for p in batch if isinstance(p.record, UnactivatedRecord)]
        conn = await self._connection(lane)
        outcomes: dict[int, ScanOutcome] = {}
        rewarding = any(p.record.rewards for p in scans)  # type: ignore[union-attr]
        scans_only = bool(scans) and not fakes and not leaks and all(p.idempotency is None for p in scans)
        if scans_only and not rewarding:
            # The common batch is one statement, atomic on its own: no BEGIN/COMMIT round trips.
            outcomes = await self._read_scans(scans, await self._send_scans(conn, scans), None)
        elif scans_only:
            # Scans and their rewards commit together; the pipeline sends BEGIN, both statements and
            # COMMIT in one round trip.
            async with conn.pipeline(), conn.transaction():
                sent = await self._send_scans(conn, scans)
                rewarded = await self._send_awards(conn, scans)
            outcomes = await self._read_scans(scans, sent, rewarded)
        else:
            async with conn.transaction():
                if scans:
                    async with conn.pipeline():
                        sent = await self._send_scans(conn, scans)
                        awarded = await self._send_awards(conn, scans) if rewarding else None
                    outcomes = await self._read_scans(scans, sent, awarded)
                    await self._write_idempotency(conn, scans, outcomes)
                if fakes:
                    await self._write_counterfeits(conn, fakes)
                if leaks:
                    await self._write_unactivated(conn, leaks)
        self.batches_written += 1
        self.scans_written += len(batch)
        return [outcomes.get(id(p)) for p in batch]

    async def _write_unactivated(self, conn: AsyncConnection[Any], leaks: list[UnactivatedRecord]) -> None:
        async with conn.cursor().copy(QUERIES["copy_unactivated"]) as copy:
            for leak in leaks:
                facts = leak.facts
                await copy.write_row(
                    (
                        leak.scan_id,
                        leak.scanned_at,
                        facts.brand_id,
                        facts.product_id,
                        facts.batch_id,
                        facts.key_id,
                        facts.index,
                        "not_activated",
                        0,  # not counted among the code's scans: its life starts at activation
                        leak.device_id,
                        leak.ip_prefix,
                        leak.lat,
                        leak.lng,
                        leak.ua_family,
                        leak.region,
                    )
                )

    async def _write_counterfeits(self, conn: AsyncConnection[Any], fakes: list[CounterfeitRecord]) -> None:
        async with conn.cursor().copy(QUERIES["copy_counterfeits"]) as copy:
            for fake in fakes:
                await copy.write_row(
                    (
                        fake.scan_id,
                        fake.scanned_at,
                        fake.claimed_brand_id,
                        fake.outcome,
                        fake.code,
                        fake.device_id,
                        fake.ip_prefix,
                        fake.lat,
                        fake.lng,
                        fake.ua_family,
                        fake.region,
                    )
                )

    async def _send_scans(self, conn: AsyncConnection[Any], scans: list[_Pending]) -> AsyncCursor[Any]:
        rows = []
        for seq, pending in enumerate(scans):
            record: ScanRecord = pending.record  # type: ignore[assignment]
            facts = record.facts
            rows.append(
                _ScanRow(
                    seq=seq,
                    scan_id=record.scan_id,
                    scanned_at=record.scanned_at,
                    brand_id=facts.brand_id,
                    product_id=facts.product_id,
                    batch_id=facts.batch_id,
                    key_id=facts.key_id,
                    code_index=facts.index,
                    device_id=record.device_id,
                    member_id=record.member_id,
                    enrolled=record.member_enrolled,
                    # Used only when the device turns out to be new: the id of its anonymous member,
                    # time-ordered so that new members append to the indexes on member ids instead of
                    # dirtying a random page of each (on a grown table, after each checkpoint, a full
                    # page image in the WAL per insert: about 20% of the statement's time, measured).
                    candidate_id=uuid7() if record.member_id is None else None,
                    ip_prefix=record.ip_prefix,
                    lat=record.lat,
                    lng=record.lng,
                    ua_family=record.ua_family,
                    distributor_id=record.distributor_id,
                    region=record.region,
                    city=record.city,
                    diverted=record.diverted,
                    suspect=record.risk.suspect,
                    risk_score=record.risk.score,
                    risk_reasons=",".join(record.risk.reasons),
                )
            )
        return await conn.execute(QUERIES["record_scans"], {"scans": _encode_rows(rows).decode()})

    async def _send_awards(self, conn: AsyncConnection[Any], scans: list[_Pending]) -> AsyncCursor[Any]:
        """After `record_scans`, in its transaction: the function reads the scan rows it just wrote."""
        rows: list[_AwardRow] = []
        for seq, pending in enumerate(scans):
            record: ScanRecord = pending.record  # type: ignore[assignment]
            facts = record.facts
            rows.extend(
                _AwardRow(
                    **msgspec.structs.asdict(item),
                    seq=seq,
                    scan_id=record.scan_id,
                    scanned_at=record.scanned_at,
                    brand_id=facts.brand_id,
                    key_id=facts.key_id,
                    code_index=facts.index,
                )
                for item in record.rewards
            )
        # Lock first, in one order, then award in a statement whose snapshot follows the locks.
        campaign_ids = sorted({row.campaign_id for row in rows})
        await conn.execute(AWARD_QUERIES["lock_campaigns"], {"campaign_ids": campaign_ids})
        return await conn.execute(AWARD_QUERIES["award_scan_rewards"], {"items": _encode_rows(rows).decode()})

    async def _read_scans(
        self, scans: list[_Pending], sent: AsyncCursor[Any], awarded: AsyncCursor[Any] | None
    ) -> dict[int, ScanOutcome]:
        awards: dict[int, list[Award]] = {}
        earned: dict[uuid.UUID, int] = {}
        for seq, campaign_id, result, points, prize_id, slot, member_id, coupon_code_sealed in (
            await awarded.fetchall() if awarded else ()
        ):
            award = Award(campaign_id, result, points, prize_id, slot, coupon_code_sealed)
            awards.setdefault(seq, []).append(award)
            if points and result in {"awarded", "won"}:
                earned[member_id] = earned.get(member_id, 0) + points
        outcomes: dict[int, ScanOutcome] = {}
        for seq, first, scan_number, first_at, member_id, enrolled, created, points in await sent.fetchall():
            outcomes[id(scans[seq])] = ScanOutcome(
                first=first,
                scan_count=scan_number,
                first_scanned_at=first_at,
                member_id=member_id,
                member_enrolled=enrolled,
                member_created=created,
                # The balance once the whole batch committed: what it held, plus what this batch gave.
                points_balance=points + earned.get(member_id, 0),
                awards=awards.get(seq, []),
            )
        return outcomes

    async def _write_idempotency(
        self, conn: AsyncConnection[Any], scans: list[_Pending], outcomes: dict[int, ScanOutcome]
    ) -> None:
        keyed = [p for p in scans if p.idempotency is not None]
        if not keyed:
            return
        await conn.execute(
            QUERIES["insert_idempotency"],
            {
                "device_ids": [p.record.device_id for p in keyed],
                "keys": [p.idempotency.key for p in keyed if p.idempotency],
                "hashes": [p.idempotency.request_hash for p in keyed if p.idempotency],
                "responses": [p.idempotency.render(outcomes[id(p)]) for p in keyed if p.idempotency],
            },
        )


async def stored_response(conn: AsyncConnection[Any], device_id: str, key: str) -> tuple[bytes, bytes] | None:
    """(request hash, response) of an earlier request with this Idempotency-Key, kept 24 hours."""
    cur = await conn.execute(QUERIES["get_idempotency"], {"device_id": device_id, "key": key})
    row = await cur.fetchone()
    return None if row is None else (bytes(row[0]), bytes(row[1]))
