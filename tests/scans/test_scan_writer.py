"""The group commit writer on its own: what one scan's bad row may do to the others of its batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg

from antifraud.scanlog import CounterfeitRecord, ScanWriter
from service.settings import Settings


def fake(code: str) -> CounterfeitRecord:
    return CounterfeitRecord(
        scan_id=uuid.uuid4(),
        scanned_at=dt.datetime.now(dt.UTC),
        claimed_brand_id=None,
        outcome="malformed",
        code=code,
        device_id="device-writer-1",
    )


async def test_a_row_the_database_refuses_fails_its_own_request_only(
    settings: Settings, db: psycopg.AsyncConnection[Any]
) -> None:
    """A value that slipped past the checks (here a NUL, which PostgreSQL's text refuses) used to fail
    the whole group commit: every scan batched with it answered 503. Its batch is written again one
    scan at a time, and only its own request fails."""
    writer = ScanWriter(settings.database_url or "", lanes=1)
    await writer.start()
    try:
        records = [fake(f"forged-{n}") for n in range(9)]
        records.insert(4, fake("poisoned\x00code"))
        # Queued before the lane runs: one batch holds them all.
        results = await asyncio.gather(
            *(writer.record_counterfeit(record) for record in records), return_exceptions=True
        )
    finally:
        await writer.stop()
    failed = [n for n, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == [4], results
    assert isinstance(results[4], psycopg.DataError)
    cur = await db.execute(
        "SELECT code FROM counterfeit_scans WHERE id = ANY(%s) ORDER BY code",
        ([record.scan_id for record in records],),
    )
    assert [row[0] for row in await cur.fetchall()] == sorted(f"forged-{n}" for n in range(9))
    assert writer.batches_written >= 2  # the refused batch was written again, one scan at a time
