"""Benchmark of the scan log's group commits alone: `ScanWriter.record` without HTTP, Redis or verification.

What PostgreSQL's share of a scan is made of, for whoever changes the data model behind it. 64 tasks
record scans concurrently, as the server's requests do, through one `ScanWriter` (its lanes and batching
as in the service); each case runs for a fixed time and prints scans/s and the CPU PostgreSQL spent per
scan (its processes, as /proc counts them: background writers included). The cases differ in one thing:

- first scans from new devices: each creates the device's anonymous member (the benchmark's first scans);
- first scans from known devices: the device's member exists (a loyal buyer's next item);
- first scans with a member token: the member is named, no device is looked up;
- repeat scans: codes claimed before, from their devices;
- first scans from new devices, rewarded: the scan benchmark's two campaigns are live (a points campaign
  and a stackable lucky draw, 1 in 10 wins), every scan is awarded in its group commit (`--campaigns`).

The difference between the first two is what creating anonymous members costs the database; between the
first and the last, what rewarding a scan costs it.

Run from the repository root (about a minute; in the scan benchmark's scratch database, recreated):

    python -m tests.bench.bench_scan_writer [--seconds 8] [--campaigns]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import statistics
import time
import uuid
from collections.abc import Callable

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from antifraud.scanlog import ScanRecord, ScanWriter
from campaigns.book import CampaignBook
from codegen.registry import CodeFacts
from loadtests.bench_scan import add_campaigns, bench_settings, cpu_seconds, fresh_database
from service import brands
from service.ids import uuid7
from service.models import BrandIn

CONCURRENCY = 64
ROUNDS = 3

# One scan of case `name`: the n-th of its case gets a record from this.
RecordMaker = Callable[[int], ScanRecord]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per case and round")
    parser.add_argument("--campaigns", action="store_true", help="add rewarded first scans")
    args = parser.parse_args()
    url = fresh_database()
    asyncio.run(run(url, args.seconds, args.campaigns))


class Scans:
    """The scans of each case: the n-th scan of a case is `case(n)`."""

    def __init__(self, brand_id: uuid.UUID, book: CampaignBook) -> None:
        self.facts = CodeFacts(
            brand_id=brand_id,
            product_id=uuid.uuid4(),  # the scan log keeps ids; nothing here joins products or batches
            product_name="Bench Lager",
            gtin=None,
            facts={},
            batch_id=uuid.uuid4(),
            lot=None,
            production_date=None,
            key_id=1,
            index=0,
            position=0,
        )
        self.book = book
        self.codes = itertools.count()
        self.claimed: list[tuple[int, str]] = []
        self.known_devices: list[str] = []
        self.members: list[uuid.UUID] = []

    def scan(self, index: int, device: str, member_id: uuid.UUID | None = None) -> ScanRecord:
        return ScanRecord(
            scan_id=uuid7(),
            scanned_at=dt.datetime.now(dt.UTC),
            facts=msgspec.structs.replace(self.facts, index=index),
            device_id=device,
            member_id=member_id,
            ip_prefix="10.0.0.0",
            ua_family="other",
        )

    def new_device(self, n: int) -> ScanRecord:
        index = next(self.codes)
        self.claimed.append((index, f"device-new-{index:08d}"))
        return self.scan(index, f"device-new-{index:08d}")

    def known_device(self, n: int) -> ScanRecord:
        return self.scan(next(self.codes), self.known_devices[n % len(self.known_devices)])

    def with_token(self, n: int) -> ScanRecord:
        return self.scan(next(self.codes), f"device-token-{n:08d}", self.members[n % len(self.members)])

    def repeat(self, n: int) -> ScanRecord:
        index, device = self.claimed[n % len(self.claimed)]
        return self.scan(index, device)

    def rewarded(self, n: int) -> ScanRecord:
        record = self.new_device(n)
        rewards = self.book.reward_items(record.facts, record.scan_id, record.scanned_at)
        return msgspec.structs.replace(record, rewards=rewards)


async def run(url: str, seconds: float, with_campaigns: bool) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        brand = await brands.create_brand(
            conn, actor="bench", data=BrandIn(slug="writer", name="Writer Bench", is_loadtest=True)
        )
        if with_campaigns:
            await add_campaigns(conn, brand.id, "writer")
    # The campaigns the service's book would hold, loaded once: they stay live for the whole run.
    pool = AsyncConnectionPool(url, min_size=1, open=False)
    book = CampaignBook(pool, bench_settings().all_master_keys)
    async with pool:
        await book.ensure_loaded()
    scans = Scans(brand.id, book)
    cases: list[tuple[str, RecordMaker]] = [
        ("first scans, new devices", scans.new_device),
        ("first scans, known devices", scans.known_device),
        ("first scans, member token", scans.with_token),
        ("repeat scans", scans.repeat),
    ]
    if with_campaigns:
        cases.append(("first scans, 2 campaigns", scans.rewarded))
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in cases}
    writer = ScanWriter(url)
    await writer.start()
    try:
        # The members and devices the later cases find (and a warm-up of every statement).
        for n in range(2000):
            outcome = await writer.record(scans.new_device(n))
            scans.members.append(outcome.member_id)
        scans.known_devices.extend(device for _, device in scans.claimed[:2000])
        for _ in range(ROUNDS):
            for name, make in cases:
                figures[name].append(await measure(writer, make, seconds))
    finally:
        await writer.stop()
    print(f"ScanWriter alone, {CONCURRENCY} concurrent scans, medians of {ROUNDS} rounds of {seconds:g} s")
    print(f"{'case':30} {'scans/s':>9} {'PostgreSQL us/scan':>19}")
    for name, runs in figures.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:30} {rate:9,.0f} {cpu:19.0f}")


def postgres_cpu_s() -> float:
    return cpu_seconds(os.getpid())["postgres"]


async def measure(writer: ScanWriter, make: RecordMaker, seconds: float) -> tuple[float, float]:
    """(scans/s, PostgreSQL CPU microseconds per scan) of CONCURRENCY tasks recording for `seconds`."""
    done = 0
    counter = itertools.count()
    deadline = time.monotonic() + seconds

    async def task() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await writer.record(make(next(counter)))
            done += 1

    cpu_before, started = postgres_cpu_s(), time.monotonic()
    await asyncio.gather(*(task() for _ in range(CONCURRENCY)))
    elapsed, cpu = time.monotonic() - started, postgres_cpu_s() - cpu_before
    return done / elapsed, cpu / max(1, done) * 1e6


if __name__ == "__main__":
    main()
