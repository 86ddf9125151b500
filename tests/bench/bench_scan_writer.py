"""Benchmark of the scan log's group commits alone: `ScanWriter.record` without HTTP, Redis or verification.

What PostgreSQL's share of a scan is made of, for whoever changes the data model behind it. 64 tasks
record scans concurrently, as the server's requests do, through one `ScanWriter` (its lanes and batching
as in the service); each case runs for a fixed time and prints scans/s and the CPU PostgreSQL spent per
scan (its processes, as /proc counts them: background writers included). The cases differ in one thing:

- first scans from new devices: each creates the device's anonymous member (the benchmark's first scans);
- first scans from known devices: the device's member exists (a loyal buyer's next item);
- first scans with a member token: the member is named, no device is looked up;
- repeat scans: codes claimed before, from their devices.

The difference between the first two is what creating anonymous members costs the database.

Run from the repository root (about a minute; in the scan benchmark's scratch database, recreated):

    python -m tests.bench.bench_scan_writer [--seconds 8]
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

from antifraud.scanlog import ScanRecord, ScanWriter
from codegen.registry import CodeFacts
from loadtests.bench_scan import cpu_seconds, fresh_database
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
    args = parser.parse_args()
    url = fresh_database()
    asyncio.run(run(url, args.seconds))


async def run(url: str, seconds: float) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        brand = await brands.create_brand(
            conn, actor="bench", data=BrandIn(slug="writer", name="Writer Bench", is_loadtest=True)
        )
    facts = CodeFacts(
        brand_id=brand.id,
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
    codes = itertools.count()
    claimed: list[tuple[int, str]] = []
    known_devices: list[str] = []
    members: list[uuid.UUID] = []

    def scan(index: int, device: str, member_id: uuid.UUID | None = None) -> ScanRecord:
        return ScanRecord(
            scan_id=uuid7(),
            scanned_at=dt.datetime.now(dt.UTC),
            facts=msgspec.structs.replace(facts, index=index),
            device_id=device,
            member_id=member_id,
            ip_prefix="10.0.0.0",
            ua_family="other",
        )

    def new_device(n: int) -> ScanRecord:
        index = next(codes)
        claimed.append((index, f"device-new-{index:08d}"))
        return scan(index, f"device-new-{index:08d}")

    def known_device(n: int) -> ScanRecord:
        return scan(next(codes), known_devices[n % len(known_devices)])

    def with_token(n: int) -> ScanRecord:
        return scan(next(codes), f"device-token-{n:08d}", members[n % len(members)])

    def repeat(n: int) -> ScanRecord:
        index, device = claimed[n % len(claimed)]
        return scan(index, device)

    writer = ScanWriter(url)
    await writer.start()
    try:
        # The members and devices the later cases find (and a warm-up of every statement).
        for n in range(2000):
            outcome = await writer.record(new_device(n))
            members.append(outcome.member_id)
        known_devices.extend(device for _, device in claimed[:2000])
        cases: list[tuple[str, RecordMaker]] = [
            ("first scans, new devices", new_device),
            ("first scans, known devices", known_device),
            ("first scans, member token", with_token),
            ("repeat scans", repeat),
        ]
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in cases}
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
