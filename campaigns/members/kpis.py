"""Membership KPIs over a date range, each with its formula (the console shows these definitions).

- members: members (not merged away, not erased) created before the end of the range.
- new_members: members created within the range.
- enrolled_members: members with a phone, enrolled before the end of the range.
- monthly_active_members (MAU): distinct members with a genuine scan in the 30 days before the end.
- scanning_members: distinct members with a genuine scan within the range.
- repeat_purchase_rate: scanning members who were first to scan two or more codes in the range,
  over scanning members who were first to scan at least one (a first scan is a purchase).
- coupon_redemption_rate: coupons issued in the range and used at least once, over coupons issued.
- dormant_reactivation_rate: members whose last scan before the range was older than the brand's
  `active_days`, and who scanned within the range, over all such members.
- average_scans_per_member: genuine scans in the range over scanning members.
- points_liability: unexpired points not yet spent, now (the brand owes them).
- scan_to_member_conversion: scanning members enrolled with a phone, over scanning members.

A rate with a zero denominator is null, not zero: "no data" is not "none converted".
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from campaigns.members import segments
from campaigns.members.errors import InvalidMemberInput
from service.db import fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "kpis.sql")
MAX_RANGE = dt.timedelta(days=366)


class Kpis(msgspec.Struct, frozen=True):
    segment_id: uuid.UUID | None
    range_from: dt.datetime
    range_to: dt.datetime
    members: int
    new_members: int
    enrolled_members: int
    monthly_active_members: int
    scanning_members: int
    repeat_purchase_rate: float | None
    coupon_redemption_rate: float | None
    dormant_reactivation_rate: float | None
    average_scans_per_member: float | None
    points_liability: int
    scan_to_member_conversion: float | None


class _Figures(msgspec.Struct, frozen=True):
    members: int
    new_members: int
    enrolled_members: int
    monthly_active_members: int
    scanning_members: int
    scans: int
    repeat_members: int
    purchasing_members: int
    coupons_issued: int
    coupons_redeemed: int
    dormant_at_start: int
    reactivated: int
    enrolled_scanners: int
    points_liability: int


class _Days(msgspec.Struct, frozen=True):
    days: int


async def kpis(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    range_from: dt.datetime,
    range_to: dt.datetime,
    now: dt.datetime,
    segment_id: uuid.UUID | None = None,
) -> Kpis:
    """The brand's KPIs, or a segment's (its members as they are now). Call inside a transaction."""
    for field, moment in (("from", range_from), ("to", range_to)):
        if moment.tzinfo is None:
            raise InvalidMemberInput(field, "give a time zone: 2026-11-01T00:00:00Z or ...+08:00")
    if range_to <= range_from:
        raise InvalidMemberInput("to", "the range ends before it starts")
    if range_to - range_from > MAX_RANGE:
        raise InvalidMemberInput("from", "at most 366 days at a time")
    active = await fetch_one(conn, QUERIES["active_days"], {"brand_id": brand_id}, _Days)
    assert active is not None
    # The query names the table either way (empty and unread without a segment).
    await conn.execute(QUERIES["create_segment_scope"])
    if segment_id is not None:
        segment = await segments.get(conn, brand_id, segment_id)
        await segments.fill_scope(conn, brand_id, segment.filter)
    f = await fetch_one(
        conn,
        QUERIES["kpis"],
        {
            "brand_id": brand_id,
            "from": range_from,
            "to": range_to,
            "now": now,
            "active_days": active.days,
            "in_segment": segment_id is not None,
        },
        _Figures,
    )
    assert f is not None
    return Kpis(
        segment_id=segment_id,
        range_from=range_from,
        range_to=range_to,
        members=f.members,
        new_members=f.new_members,
        enrolled_members=f.enrolled_members,
        monthly_active_members=f.monthly_active_members,
        scanning_members=f.scanning_members,
        repeat_purchase_rate=_rate(f.repeat_members, f.purchasing_members),
        coupon_redemption_rate=_rate(f.coupons_redeemed, f.coupons_issued),
        dormant_reactivation_rate=_rate(f.reactivated, f.dormant_at_start),
        average_scans_per_member=_rate(f.scans, f.scanning_members),
        points_liability=f.points_liability,
        scan_to_member_conversion=_rate(f.enrolled_scanners, f.scanning_members),
    )


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
