"""Benchmark of segment counts: `segments.count` over generated members, one filter per condition kind.

The issue's promise: a segment count over 1 million members answers in under 1 s. This script creates a
scratch database on the server of BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
applies the migrations, generates N members server-side (members, member_stats, tiers, tags, member_tags,
one custom attribute; skewed like real data), runs VACUUM ANALYZE, then times the real code path,
`campaigns.members.segments.count`, on one long-lived connection as the app's pool would: per filter one
warm-up call and 5 timed calls. It prints the count, median and max ms, PASS/FAIL against 1000 ms, and
exits 1 when any median misses.

Run from the repository root (about 3 minutes for 1 million members on 2 cores, 1 of them generating):

    python -m tests.bench.bench_segments [--members 1000000] [--keep]

The scratch database (onecode_bench_segments) is dropped first if it exists, and at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
from psycopg import errors, sql

from campaigns.members import segments
from campaigns.members.segments import SegmentFilter
from service import brands
from service.migrations import migrate
from service.models import BrandIn

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DBNAME = "onecode_bench_segments"
RUNS = 5
TARGET_MS = 1000.0
# A pathological plan can run for hours; past this a filter is reported as a timeout (and a miss).
STATEMENT_TIMEOUT = "60s"

# Twenty products; the first ones are bought far more often (see the power() skew below).
PRODUCTS = [uuid.uuid5(uuid.NAMESPACE_URL, f"bench-product-{n}") for n in range(20)]
# Provinces, most frequent first; a few members abroad so that country filters mean something.
REGIONS = ["CN-ZJ", "CN-GD", "CN-JS", "CN-SH", "CN-BJ", "CN-SC", "CN-SD", "CN-HB", "CN-FJ", "CN-HN"]
ABROAD = ["HK", "SG", "US-CA", "JP-13"]
STORES = ["Hangzhou West Lake", "Shenzhen Futian", "Nanjing Xinjiekou", "Shanghai Jing'an", "Online"]
# Manual tags and the share of members carrying each.
TAGS = {"vip": 0.20, "wholesale": 0.05, "complained": 0.01}

TIERS = """
INSERT INTO member_tiers (brand_id, rank, name, min_points_earned, min_scans) VALUES
    (%(brand_id)s, 0, 'Standard', 0, 0), (%(brand_id)s, 1, 'Silver', 50, 3),
    (%(brand_id)s, 2, 'Gold', 200, 10), (%(brand_id)s, 3, 'Diamond', 600, 30)
"""
ATTRIBUTE = "INSERT INTO member_attribute_defs (brand_id, name, type) VALUES (%(brand_id)s, 'store', 'text')"

# 35% enrolled (phone, stated region, often marketing consent and a store); members created over 2 years.
MEMBERS = """
INSERT INTO members (id, brand_id, phone_last4, consent_marketing_at, created_at, enrolled_at, region,
                     attributes, erased_at)
SELECT gen_random_uuid(), %(brand_id)s,
       CASE WHEN enrolled THEN lpad((i %% 10000)::text, 4, '0') END,
       CASE WHEN enrolled AND r_consent < 0.6 THEN created + interval '1 hour' END,
       created,
       CASE WHEN enrolled THEN created + r_consent * interval '30 days' END,
       CASE WHEN enrolled THEN region END,
       CASE WHEN enrolled AND r_store < 0.5
            THEN jsonb_build_object('store', (%(stores)s::text[])[1 + floor(r_store * 2 * %(n_stores)s)::int])
            ELSE '{}' END,
       CASE WHEN i %% 200 = 0 THEN created + interval '100 days' END
FROM (
    SELECT i, random() < 0.35 AS enrolled, random() AS r_consent, random() AS r_store,
           now() - power(random(), 1.2) * interval '730 days' AS created,
           CASE WHEN random() < 0.03 THEN (%(abroad)s::text[])[1 + floor(random() * %(n_abroad)s)::int]
                ELSE (%(regions)s::text[])[1 + floor(power(random(), 2) * %(n_regions)s)::int] END AS region
    FROM generate_series(1, %(members)s) i
) g
"""

# Scans are heavy-tailed (36% scanned once); repeat scanners' last scan leans recent; tier and lifecycle
# follow from points and dates as the nightly refresh computes them (default settings: new 30 d,
# active 90 d, churned after 365 d). 2% of members have no stats row yet (LEFT JOIN, coalesce() in the query).
STATS = """
INSERT INTO member_stats (brand_id, member_id, scans, scans_in_window, first_scans, products, first_scan_at,
                          last_scan_at, last_region, points_earned, points_balance, points_spent, product_ids,
                          tier_rank, lifecycle, refreshed_at)
SELECT %(brand_id)s, id, scans, scans, greatest(1, floor(scans * r_first)::int),
       cardinality(product_ids), created, last_scan_at, last_region, points_earned,
       floor(points_earned * r_balance)::bigint, points_earned - floor(points_earned * r_balance)::bigint,
       product_ids,
       CASE WHEN points_earned >= 600 THEN 3 WHEN points_earned >= 200 THEN 2
            WHEN points_earned >= 50 THEN 1 ELSE 0 END,
       CASE WHEN created >= now() - interval '30 days' THEN 'new'
            WHEN last_scan_at >= now() - interval '90 days' THEN 'active'
            WHEN last_scan_at >= now() - interval '365 days' THEN 'dormant'
            ELSE 'churned' END,
       now()
FROM (
    SELECT id, created, scans, r_first, r_balance, last_region, product_ids,
           CASE WHEN scans = 1 THEN created
                ELSE created + (now() - created) * power(r_last, 0.5) END AS last_scan_at,
           scans * 10 + floor(r_points * 50)::bigint AS points_earned
    FROM (
        SELECT m.id, m.created_at AS created, 1 + floor(power(random(), 4) * 60)::int AS scans,
               random() AS r_first, random() AS r_balance, random() AS r_last, random() AS r_points,
               coalesce(m.region, (%(regions)s::text[])[1 + floor(power(random(), 2) * %(n_regions)s)::int])
                   AS last_region,
               CASE WHEN random() < 0.6
                    THEN ARRAY[(%(products)s::uuid[])[1 + floor(power(random(), 2) * %(n_products)s)::int]]
                    ELSE ARRAY[(%(products)s::uuid[])[1 + floor(power(random(), 2) * %(n_products)s)::int],
                               (%(products)s::uuid[])[1 + floor(random() * %(n_products)s)::int]] END
                   AS product_ids
        FROM members m
        WHERE m.brand_id = %(brand_id)s AND random() >= 0.02
    ) drawn
) derived
"""

TAG = """
WITH tag AS (INSERT INTO tags (brand_id, name, kind) VALUES (%(brand_id)s, %(name)s, 'manual') RETURNING id)
INSERT INTO member_tags (brand_id, tag_id, member_id, added_by)
SELECT %(brand_id)s, tag.id, m.id, 'bench' FROM tag, members m
WHERE m.brand_id = %(brand_id)s AND random() < %(share)s
"""

FILTERS: dict[str, SegmentFilter] = {
    "all": SegmentFilter(),
    "enrolled": SegmentFilter(enrolled=True),
    "consent_marketing": SegmentFilter(consent_marketing=True),
    "tiers 2,3": SegmentFilter(tiers=[2, 3]),
    "lifecycle active": SegmentFilter(lifecycle=["active"]),
    "regions CN-ZJ,CN-GD": SegmentFilter(regions=["CN-ZJ", "CN-GD"]),
    "regions country HK,SG": SegmentFilter(regions=["HK", "SG"]),
    "regions country CN": SegmentFilter(regions=["CN"]),
    "scans 5..20": SegmentFilter(scans_min=5, scans_max=20),
    "scanned_within_days 30": SegmentFilter(scanned_within_days=30),
    "idle_days 180": SegmentFilter(idle_days=180),
    "points_earned_min 200": SegmentFilter(points_earned_min=200),
    "points_balance_min 100": SegmentFilter(points_balance_min=100),
    "points_spent_min 100": SegmentFilter(points_spent_min=100),
    "products_any (2 rare)": SegmentFilter(products_any=PRODUCTS[15:17]),
    "products_any (top)": SegmentFilter(products_any=PRODUCTS[:1]),
    "attributes store": SegmentFilter(attributes={"store": "Hangzhou West Lake"}),
    "tags_all vip+wholesale": SegmentFilter(tags_all=["vip", "wholesale"]),
    "tags_any wholesale,complained": SegmentFilter(tags_any=["wholesale", "complained"]),
    "tags_none vip": SegmentFilter(tags_none=["vip"]),
    "combined": SegmentFilter(
        tiers=[1, 2, 3], lifecycle=["active"], regions=["CN-ZJ"], tags_any=["vip", "wholesale"]
    ),
}


def database_url() -> str:
    return psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=DBNAME)


def drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME)))


def create_database() -> None:
    drop_database()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    migrate(database_url())


async def generate(conn: psycopg.AsyncConnection[Any], members: int) -> uuid.UUID:
    """One brand and its members; each step is one server-side statement. Returns the brand id."""
    brand = await brands.create_brand(conn, actor="bench", data=BrandIn(slug="bench-segments", name="Bench"))
    params: dict[str, Any] = {
        "brand_id": brand.id,
        "members": members,
        "regions": REGIONS,
        "n_regions": len(REGIONS),
        "abroad": ABROAD,
        "n_abroad": len(ABROAD),
        "stores": STORES,
        "n_stores": len(STORES),
        "products": PRODUCTS,
        "n_products": len(PRODUCTS),
    }
    steps: list[tuple[str, Any, dict[str, Any]]] = [
        ("member_tiers", TIERS, params),
        ("attribute def", ATTRIBUTE, params),
        ("members", MEMBERS, params),
        ("member_stats", STATS, params),
    ]
    steps += [(f"tag {name}", TAG, {**params, "name": name, "share": share}) for name, share in TAGS.items()]
    for label, query, values in steps:
        started = time.perf_counter()
        cur = await conn.execute(query, values)
        print(f"  {label:<20} {cur.rowcount:>10,} rows {time.perf_counter() - started:7.1f} s", flush=True)
    started = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    print(f"  {'VACUUM ANALYZE':<20} {'':>15} {time.perf_counter() - started:7.1f} s", flush=True)
    return brand.id


async def time_filter(
    conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID, flt: SegmentFilter
) -> tuple[int, list[float]] | None:
    """The count and the milliseconds of RUNS calls, after one warm-up call; None on a statement timeout."""
    try:
        found = await segments.count(conn, brand_id, flt)
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            await segments.count(conn, brand_id, flt)  # recency filters move with the clock
            timings.append((time.perf_counter() - started) * 1000)
    except errors.QueryCanceled:
        return None
    return found.members, timings


async def run(members: int) -> int:
    create_database()
    async with await psycopg.AsyncConnection.connect(database_url(), autocommit=True) as conn:
        print(f"generating {members:,} members")
        started = time.perf_counter()
        brand_id = await generate(conn, members)
        print(f"generation: {time.perf_counter() - started:.1f} s\n")

        await conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        misses = 0
        print(f"{'filter':<32} {'count':>10} {'median ms':>10} {'max ms':>9}  result")
        for name, flt in FILTERS.items():
            measured = await time_filter(conn, brand_id, flt)
            if measured is None:
                misses += 1
                print(f"{name:<32} {'?':>10} {'> ' + STATEMENT_TIMEOUT:>10} {'':>9}  FAIL (timeout)")
                continue
            found, timings = measured
            median = statistics.median(timings)
            ok = median < TARGET_MS
            misses += not ok
            print(
                f"{name:<32} {found:>10,} {median:>10.1f} {max(timings):>9.1f}  {'PASS' if ok else 'FAIL'}",
                flush=True,
            )
        # psycopg prepares a query run 5 times on a connection; PostgreSQL may then switch to a generic plan,
        # which cannot drop the null conditions. Show which plans the count query got.
        cur = await conn.execute(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)"
            " FROM pg_prepared_statements WHERE statement LIKE 'SELECT count(*) AS members FROM (%'"
        )
        plans = await cur.fetchone()
        assert plans is not None
        print(f"\nprepared count query: {plans[0]} generic plan(s), {plans[1]} custom plan(s)")
    print(f"{len(FILTERS) - misses}/{len(FILTERS)} filters under {TARGET_MS:.0f} ms (median of {RUNS})")
    return 1 if misses else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000_000, help="members to generate")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DBNAME} database afterwards")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args.members))
    finally:
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    sys.exit(main())
