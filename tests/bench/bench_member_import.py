"""Member list import throughput: a generated CSV of N members (default 100,000) into a scratch database.

    python -m tests.bench.bench_member_import [--members 100000] [--encoding gbk]

Prints the import time (target: under 60 s for 100,000 rows on a 2-core machine), the rows per second,
and the time of a second run of the same file, which must import nothing new. The numbers go through
the real path (`campaigns.members.imports.run`: normalisation, blind index, per-member data keys,
chunked transactions), on the server of BENCH_DATABASE_URL (default: the local PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time

import psycopg

from campaigns.members import imports
from campaigns.members.phones import MemberVault
from service import brands
from service.migrations import migrate
from service.models import BrandIn

SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "onecode_bench_import"
TARGET_S = 60.0
PREFIXES = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "182", "187", "188")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


def member_list(count: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    phones: set[str] = set()
    while len(phones) < count:
        phones.add(rng.choice(PREFIXES) + f"{rng.randrange(10**8):08d}")
    lines = ["手机号,姓名,生日,积分"]
    for phone in phones:
        birthday = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(16_000))
        name = rng.choice(SURNAMES) + rng.choice(SURNAMES)
        lines.append(
            f"{phone[:3]} {phone[3:7]} {phone[7:]},{name},{birthday:%Y/%m/%d},{rng.randrange(0, 5000)}"
        )
    return "\n".join(lines) + "\n"


def scratch_url() -> str:
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    url = psycopg.conninfo.make_conninfo(SERVER, dbname=DATABASE)
    migrate(url)
    return url


async def bench(count: int, encoding: str) -> bool:
    data = member_list(count).encode(encoding)
    url = scratch_url()
    master_key = os.urandom(32)
    vault = MemberVault([master_key])
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        async with conn.transaction():
            brand = await brands.create_brand(conn, actor="bench", data=BrandIn(slug="bench", name="Bench"))
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            report = await imports.run(
                conn, vault, master_key, brand.id, data, actor="bench", now=dt.datetime.now(dt.UTC)
            )
            runs.append((time.perf_counter() - started, report))
    (first_s, first), (second_s, second) = runs
    print(f"file: {count:,} rows, {len(data) / 1e6:.1f} MB, {encoding}")
    print(
        f"import:  {first_s:6.1f} s  ({count / first_s:,.0f} rows/s)  created {first.created:,}, "
        f"points credited {first.points_credited:,}, rejected {first.rejected}"
    )
    print(f"re-run:  {second_s:6.1f} s  created {second.created}, skipped {second.skipped:,}")
    ok = first_s < TARGET_S and first.created == count and second.created == 0 and second.points_credited == 0
    print(f"{'PASS' if ok else 'FAIL'}: under {TARGET_S:.0f} s, and a re-run imports nothing new")
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "gbk"])
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(bench(args.members, args.encoding)) else 1)


if __name__ == "__main__":
    main()
