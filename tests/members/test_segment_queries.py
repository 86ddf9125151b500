"""Segment filters on member statistics: the strict form (member_stats' own columns) and the coalesced
form (a member without statistics counts as tier 0, 'new', no scans, no points) select the same members,
and the strict form lets PostgreSQL filter member_stats before joining it."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.members import segments, tiers
from campaigns.members.segments import SegmentFilter
from tests.conftest import Tenant

LIFECYCLES = ("new", "active", "dormant", "churned")


@dataclass(frozen=True)
class Stats:
    tier_rank: int
    lifecycle: str
    scans: int
    points_earned: int
    points_spent: int
    points_balance: int


NO_STATS = Stats(0, "new", 0, 0, 0, 0)


async def populate(db: psycopg.AsyncConnection[Any], brand_id: uuid.UUID) -> list[Stats]:
    """Sixty members, a quarter of them without a statistics row; returns what each one counts as."""
    rng = random.Random(2026)
    population: list[Stats] = []
    for _ in range(60):
        member_id = uuid.uuid4()
        await db.execute("INSERT INTO members (id, brand_id) VALUES (%s, %s)", (member_id, brand_id))
        if rng.random() < 0.25:
            population.append(NO_STATS)
            continue
        stats = Stats(
            tier_rank=rng.randrange(4),
            lifecycle=rng.choice(LIFECYCLES),
            scans=rng.randrange(4),
            points_earned=rng.randrange(4),
            points_spent=rng.randrange(4),
            points_balance=rng.randrange(4),
        )
        await db.execute(
            "INSERT INTO member_stats (brand_id, member_id, tier_rank, lifecycle, scans, points_earned,"
            " points_spent, points_balance, refreshed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
            (
                brand_id,
                member_id,
                stats.tier_rank,
                stats.lifecycle,
                stats.scans,
                stats.points_earned,
                stats.points_spent,
                stats.points_balance,
            ),
        )
        population.append(stats)
    return population


def selects(flt: SegmentFilter, member: Stats) -> bool:
    return (
        (flt.tiers is None or member.tier_rank in flt.tiers)
        and (flt.lifecycle is None or member.lifecycle in flt.lifecycle)
        and (flt.scans_min is None or member.scans >= flt.scans_min)
        and (flt.points_earned_min is None or member.points_earned >= flt.points_earned_min)
        and (flt.points_spent_min is None or member.points_spent >= flt.points_spent_min)
        and (flt.points_balance_min is None or member.points_balance >= flt.points_balance_min)
    )


small = st.none() | st.integers(0, 4)
filters = st.builds(
    SegmentFilter,
    tiers=st.none() | st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
    lifecycle=st.none() | st.lists(st.sampled_from(LIFECYCLES), min_size=1, max_size=3, unique=True),
    scans_min=small,
    points_earned_min=small,
    points_spent_min=small,
    points_balance_min=small,
)


@pytest.fixture
async def population(db: psycopg.AsyncConnection[Any], tenant_a: Tenant) -> list[Stats]:
    # A ladder of the ranks the statistics hold: a filter may name only tiers that exist.
    ladder = tiers.TiersIn(tiers=[tiers.TierIn(name=f"T{rank}", min_scans=10 * rank) for rank in range(4)])
    await tiers.put_tiers(db, tenant_a.brand_id, ladder)
    return await populate(db, tenant_a.brand_id)


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flt=filters)
async def test_strict_and_coalesced_conditions_select_the_same_members(
    db: psycopg.AsyncConnection[Any], tenant_a: Tenant, population: list[Stats], flt: SegmentFilter
) -> None:
    found = await segments.count(db, tenant_a.brand_id, flt)
    assert found.members == sum(selects(flt, member) for member in population), flt


@pytest.mark.parametrize(
    ("flt", "joined"),
    [
        (SegmentFilter(tiers=[1, 2]), "inner"),
        (SegmentFilter(lifecycle=["active"], points_earned_min=1), "inner"),
        (SegmentFilter(tiers=[0, 1]), "left"),  # tier 0 is also every member without statistics
        (SegmentFilter(scans_min=0), "left"),
    ],
)
async def test_a_condition_no_member_without_statistics_meets_filters_member_stats_first(
    db: psycopg.AsyncConnection[Any],
    tenant_a: Tenant,
    population: list[Stats],
    flt: SegmentFilter,
    joined: str,
) -> None:
    params = await segments.validate(db, tenant_a.brand_id, flt)
    cur = await db.execute("EXPLAIN (FORMAT JSON) " + segments.count_query(params), params)
    row = await cur.fetchone()
    assert row is not None
    join_types = set(_join_types(row[0][0]["Plan"]))
    if joined == "inner":
        assert "Left" not in join_types and "Right" not in join_types, join_types
    else:
        assert join_types & {"Left", "Right"}, join_types


def _join_types(plan: dict[str, Any]) -> list[str]:
    found = [plan["Join Type"]] if "Join Type" in plan else []
    for child in plan.get("Plans", []):
        found += _join_types(child)
    return found
