"""The hot queries' plans use their indexes, never a sequential scan of the big tables (EXPLAIN, JSON).

One database holds 50 brands' worth of generated rows (about 20,000 scans over three monthly partitions,
15,000 code claims, 40,000 members, 6,000 packed cases), analyzed, so that the planner weighs indexes as
it would in production. Each hot query is planned with literal parameters (a custom plan, as psycopg's
first executions get) and its plan must (1) use the named indexes and (2) contain no Seq Scan on a table
of 1,000 rows or more. Empty partitions (the months ahead) may be read sequentially: nothing is there.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from service.queries import load_queries

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.conftest import Engines

REPORTS = load_queries("antifraud.sql", "reports.sql")
TRACE = load_queries("antifraud.sql", "trace.sql")
REVIEW = load_queries("antifraud.sql", "review.sql")
SHIPMENTS = load_queries("antifraud.sql", "shipments.sql")
SCANS = load_queries("antifraud.sql", "scans.sql")
BOOK = load_queries("campaigns.sql", "book.sql")
STATS = load_queries("campaigns.sql", "stats.sql")
CODEGEN = load_queries("codegen.sql", "codegen.sql")
BIG = 1000  # rows: a table at least this big must never be read whole

# 50 brands, each with a product, a batch of 100,000 codes, a distributor and a shipment of 20 ranges, an
# active points campaign, 120 packed cases, 800 members (300 with a device), 400 scans over the last 53
# days (in this month's partition and the two before: their tables are made here) of 300 codes, every
# 20th one diverted, their 300 claims, a points award for every third first scan, and 100 forged codes.
BULK = """
CREATE TABLE scans_prev1 PARTITION OF scans
    FOR VALUES FROM (date_trunc('month', now()) - interval '1 month') TO (date_trunc('month', now()));
CREATE TABLE scans_prev2 PARTITION OF scans
    FOR VALUES FROM (date_trunc('month', now()) - interval '2 months')
    TO (date_trunc('month', now()) - interval '1 month');
CREATE TABLE counterfeit_scans_prev1 PARTITION OF counterfeit_scans
    FOR VALUES FROM (date_trunc('month', now()) - interval '1 month') TO (date_trunc('month', now()));
CREATE TABLE counterfeit_scans_prev2 PARTITION OF counterfeit_scans
    FOR VALUES FROM (date_trunc('month', now()) - interval '2 months')
    TO (date_trunc('month', now()) - interval '1 month');
CREATE TEMP TABLE nb AS
SELECT n, gen_random_uuid() AS brand_id, gen_random_uuid() AS product_id, gen_random_uuid() AS batch_id,
       gen_random_uuid() AS distributor_id, gen_random_uuid() AS campaign_id, gen_random_uuid() AS shipment_id
FROM generate_series(0, 49) n;
INSERT INTO brands (id, slug, name, short_code)
SELECT brand_id, 'bulk-' || n, 'Bulk ' || n, 'BK' || chr(65 + n / 26) || chr(65 + n % 26) FROM nb;
INSERT INTO brand_keys (brand_id, key_id, sealed_mac_key, ed25519_public, sealed_ed25519)
SELECT brand_id, 0, '\\x00', '\\x00', '\\x00' FROM nb;
INSERT INTO products (id, brand_id, name) SELECT product_id, brand_id, 'Product ' || n FROM nb;
INSERT INTO batches (id, brand_id, product_id, key_id, start_index, quantity, lot)
SELECT batch_id, brand_id, product_id, 0, 0, 100000, 'L' || n FROM nb;
INSERT INTO distributors (id, brand_id, name, regions)
SELECT distributor_id, brand_id, 'Dist ' || n, '{CN-ZJ}' FROM nb;
INSERT INTO shipments (id, brand_id, distributor_id, items, shipped_at, shipped_by)
SELECT shipment_id, brand_id, distributor_id, 20000, now() - interval '90 days', 'test' FROM nb;
INSERT INTO activations (brand_id, shipment_id, distributor_id, batch_id, batch_seq, start_index, stop_index)
SELECT nb.brand_id, shipment_id, distributor_id, nb.batch_id, b.seq, r * 1000, r * 1000 + 1000
FROM nb JOIN batches b ON b.id = nb.batch_id, generate_series(0, 19) r;
INSERT INTO campaigns (id, brand_id, name, kind, status, starts_at, ends_at, budget_cents)
SELECT campaign_id, brand_id, 'Points ' || n, 'points', 'active', now() - interval '90 days',
       now() + interval '30 days', 100000000
FROM nb;
CREATE TEMP TABLE cases AS
SELECT nb.n, nb.brand_id, nb.batch_id, b.seq, c, gen_random_uuid() AS id
FROM nb JOIN batches b ON b.id = nb.batch_id, generate_series(0, 119) c;
INSERT INTO aggregations (id, brand_id, level, sscc)
SELECT id, brand_id, 'case', lpad((n * 1000 + c)::text, 18, '0') FROM cases;
INSERT INTO aggregation_items (aggregation_id, brand_id, batch_id, batch_seq, start_index, stop_index)
SELECT id, brand_id, batch_id, seq, c * 24, c * 24 + 24 FROM cases;
INSERT INTO members (id, brand_id, created_at)
SELECT (lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, brand_id,
       now() - interval '90 days'
FROM nb, generate_series(0, 799) i;
INSERT INTO member_devices (brand_id, device_id, member_id)
SELECT brand_id, 'device-' || n || '-' || i,
       (lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid
FROM nb, generate_series(0, 299) i;
INSERT INTO scans (id, scanned_at, brand_id, product_id, batch_id, key_id, code_index, verdict, scan_number,
                   device_id, member_id, distributor_id, region, diverted)
SELECT gen_random_uuid(), now() - i * interval '190 minutes' - n * interval '1 second', brand_id, product_id,
       batch_id, 0, i % 300, CASE WHEN i < 300 THEN 'genuine_first' ELSE 'genuine_repeat' END, 1,
       'device-' || n || '-' || (i % 300),
       (lpad(to_hex(n), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i % 300), 12, '0'))::uuid,
       distributor_id,
       CASE WHEN i % 20 = 0 THEN 'CN-GD' ELSE 'CN-ZJ' END, i % 20 = 0
FROM nb, generate_series(0, 399) i;
INSERT INTO counterfeit_scans (id, scanned_at, claimed_brand_id, outcome, code, device_id, region)
SELECT gen_random_uuid(), now() - i * interval '760 minutes' - n * interval '1 second', brand_id, 'bad_tag',
       'https://s.example.cn/C/BKAA/' || md5(n || '/' || i), 'forger-' || i, 'CN-GD'
FROM nb, generate_series(0, 99) i;
INSERT INTO code_claims (brand_id, key_id, code_index, batch_id, product_id, first_scan_id, first_device_id,
                         first_scanned_at, scan_count, last_scanned_at)
SELECT brand_id, 0, i, batch_id, product_id, gen_random_uuid(), 'device', now(), 1, now()
FROM nb, generate_series(0, 299) i;
INSERT INTO points_awards (campaign_id, scan_id, member_id, points, cost_cents, day, awarded_at)
SELECT nb.campaign_id, s.id, s.member_id, 10, 10, s.scanned_at::date, s.scanned_at
FROM nb JOIN scans s ON s.brand_id = nb.brand_id WHERE s.verdict = 'genuine_first' AND s.code_index % 3 = 0;
ANALYZE brands, products, batches, distributors, shipments, activations, campaigns, aggregations,
        aggregation_items, members, member_devices, scans, counterfeit_scans, code_claims, points_awards;
"""


@pytest.fixture(scope="module")
def bulk(engines: Engines) -> Iterator[tuple[str, dict[str, Any]]]:
    """The generated database, and one brand's ids to plan the queries with."""
    name = f"oc_explain_{engines.run_id}"
    with engines.admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(engines.template)
            )
        )
    url = engines.database_url(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BULK)
            row = conn.execute(
                "SELECT b.id, ba.id, ba.product_id, d.id, c.id FROM brands b"
                " JOIN batches ba ON ba.brand_id = b.id JOIN distributors d ON d.brand_id = b.id"
                " JOIN campaigns c ON c.brand_id = b.id WHERE b.slug = 'bulk-7'"
            ).fetchone()
        assert row is not None
        ids = dict(
            zip(["brand_id", "batch_id", "product_id", "distributor_id", "campaign_id"], row, strict=True)
        )
        yield url, ids
    finally:
        with engines.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _scan(ids: dict[str, Any]) -> dict[str, Any]:
    """One genuine scan as the scan writer hands it to record_scans."""
    return {
        "seq": 0,
        "scan_id": str(uuid.uuid4()),
        "scanned_at": NOW.isoformat(),
        "brand_id": str(ids["brand_id"]),
        "product_id": str(ids["product_id"]),
        "batch_id": str(ids["batch_id"]),
        "key_id": 0,
        "code_index": 5,
        "device_id": "device-7-5",
        "member_id": None,
        "enrolled": False,
        "candidate_id": str(uuid.uuid4()),
        "ip_prefix": None,
        "lat": None,
        "lng": None,
        "ua_family": None,
        "distributor_id": None,
        "region": None,
        "diverted": False,
        "suspect": False,
        "risk_score": 0,
        "risk_reasons": None,
    }


def _award(ids: dict[str, Any]) -> dict[str, Any]:
    """One (scan, campaign) pair as the campaign book hands it to award_scan_rewards."""
    return {
        "seq": 0,
        "scan_id": str(uuid.uuid4()),
        "scanned_at": NOW.isoformat(),
        "brand_id": str(ids["brand_id"]),
        "key_id": 0,
        "code_index": 5,
        "campaign_id": str(ids["campaign_id"]),
        "kind": "points",
        "first_only": True,
        "members": "any",
        "points": 10,
        "cost_cents": 10,
        "drawn_prize_id": None,
        "day": NOW.date().isoformat(),
        "expires_at": (NOW + dt.timedelta(days=400)).isoformat(),
        "coupon_template_id": None,
        "coupon_code_hash": None,
        "coupon_code_sealed": None,
    }


def _report(ids: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A brand's report filter over the default 30 days, as antifraud.reports builds it."""
    found = {
        "brand_id": ids["brand_id"],
        "since": NOW - dt.timedelta(days=30),
        "until": NOW,
        "only_distributor": None,
        "distributor_id": None,
        "region": None,
        "time_zone": "Asia/Shanghai",
    }
    return {**found, **extra}


NOW = dt.datetime.now(dt.UTC)
CASES = [
    pytest.param(
        SCANS["record_scans"],
        lambda ids: {"scans": json.dumps([_scan(ids)])},
        {"code_claims_pkey", "member_devices_pkey", "members_pkey", "points_lots_open"},
        id="POST /v1/scans: record_scans (the code's claim decides the first scan)",
    ),
    pytest.param(
        BOOK["award_scan_rewards"],
        lambda ids: {"items": json.dumps([_award(ids)])},
        {"scans_pkey", "code_claims_pkey", "members_pkey"},
        id="POST /v1/scans: award_scan_rewards (one rewarded scan per code)",
    ),
    pytest.param(
        REPORTS["diversion_events"],
        lambda ids: _report(ids, before_at=None, before_id=None, limit=100),
        {"scans_diverted", "aggregation_items_batch_stop"},
        id="GET /v1/reports/diversion: diversion_events",
    ),
    pytest.param(
        REPORTS["diversion_totals"],
        _report,
        {"scans_diverted"},
        id="GET /v1/reports/diversion: diversion_totals",
    ),
    pytest.param(
        REPORTS["scans_by"],
        lambda ids: _report(ids, by="region", limit=100),
        {"scans_brand_time", "counterfeit_scans_brand_time"},
        id="GET /v1/reports/scans: scans_by",
    ),
    pytest.param(
        REPORTS["batch_scan_rates"],
        lambda ids: {"brand_id": ids["brand_id"], "after": None, "limit": 100},
        {"code_claims_batch", "activations_batch"},
        id="GET /v1/reports/batches: batch_scan_rates",
    ),
    pytest.param(
        SHIPMENTS["activation_summary"],
        lambda ids: {"brand_id": ids["brand_id"], "batch_id": ids["batch_id"]},
        {"scans_batch", "activations_batch"},
        id="GET /v1/batches/{id}/activation: activation_summary",
    ),
    pytest.param(
        TRACE["item_scans"],
        lambda ids: {"brand_id": ids["brand_id"], "key_id": 0, "code_index": 5, "limit": 1000},
        {"scans_code"},
        id="GET /v1/codes/{serial}/trace: item_scans",
    ),
    pytest.param(
        TRACE["item_shipment"],
        lambda ids: {"brand_id": ids["brand_id"], "batch_id": ids["batch_id"], "position": 5},
        {"activations_batch"},
        id="GET /v1/codes/{serial}/trace: item_shipment",
    ),
    pytest.param(
        CODEGEN["parent_of_item"],
        lambda ids: {"brand_id": ids["brand_id"], "batch_id": ids["batch_id"], "index": 2000},
        {"aggregation_items_batch_stop"},
        id="GET /v1/codes/{serial}/trace: parent_of_item (its case)",
    ),
    pytest.param(
        REVIEW["flagged_page"],
        lambda ids: {"brand_id": ids["brand_id"], "status": "open", "after": None, "limit": 100},
        {"code_claims_pkey", "aggregation_items_batch_stop"},
        id="GET /v1/antifraud/flagged: flagged_page",
    ),
    pytest.param(
        STATS["campaign_totals"],
        lambda ids: {"campaign_id": ids["campaign_id"]},
        {"points_awards_pkey", "draws_pkey", "coupons_campaign"},
        id="GET /v1/campaigns/{id}/stats: campaign_totals",
    ),
    pytest.param(
        STATS["campaign_days"],
        lambda ids: {"campaign_id": ids["campaign_id"], "days": 90},
        {"points_awards_pkey"},
        id="GET /v1/campaigns/{id}/stats: campaign_days",
    ),
    pytest.param(
        STATS["campaign_regions"],
        lambda ids: {"campaign_id": ids["campaign_id"], "regions": 50},
        {"points_awards_pkey", "scans_pkey"},
        id="GET /v1/campaigns/{id}/stats: campaign_regions",
    ),
]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


class TestHotQueryPlans:
    @pytest.mark.parametrize(("query", "build", "indexes"), CASES)
    def test_the_plan_uses_the_indexes_and_reads_no_big_table_whole(
        self,
        bulk: tuple[str, dict[str, Any]],
        query: LiteralString,
        build: Callable[[dict[str, Any]], dict[str, Any]],
        indexes: set[str],
    ) -> None:
        """Each named index appears in the plan (a partition's index counts as its parent's); no Seq Scan
        reads a table of 1,000 rows or more."""
        url, ids = bulk
        with psycopg.connect(url) as conn:
            cur = psycopg.ClientCursor(conn)
            row = cur.execute("EXPLAIN (FORMAT JSON) " + query, build(ids)).fetchone()
            assert row is not None
            nodes = list(_nodes(row[0][0]["Plan"]))
            used = {n["Index Name"] for n in nodes if "Index Name" in n}
            used |= {name for n in nodes for name in n.get("Conflict Arbiter Indexes", [])}
            roots: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, coalesce(pg_partition_root(name::regclass)::text, name)"
                    " FROM unnest(%s::text[]) AS name",
                    (sorted(used),),
                ).fetchall()
            )
            big = {
                name
                for (name,) in conn.execute(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                    " AND relkind = 'r' AND reltuples >= %s",
                    (BIG,),
                )
            }
        seq_scanned = {n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"}
        assert indexes <= set(roots.values()), f"indexes used: {sorted(set(roots.values()))}"
        assert not seq_scanned & big, f"sequential scans of big tables: {sorted(seq_scanned & big)}"
