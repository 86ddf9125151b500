"""Live campaign figures for marketers, and the winners list (phones masked) for fulfilment."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from campaigns import campaigns
from service.db import fetch_all, fetch_one
from service.queries import load_queries
from service.spreadsheets import safe_cell

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.sql", "stats.sql")
DAYS_SHOWN = 90
REGIONS_SHOWN = 100


class Totals(msgspec.Struct, frozen=True):
    # A rewarded scan is a points award, a coupon of a coupon campaign, or a draw (whatever it gave).
    rewarded_scans: int
    participants: int
    points_given: int
    prizes_won: int
    # Coupons issued by the campaign (a coupon campaign's, or a draw's coupon prizes), and those used.
    coupons_issued: int
    coupons_used: int


class DrawResultCount(msgspec.Struct, frozen=True):
    result: str
    draws: int


class PrizeFigures(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    kind: str
    stock: int
    awarded: int
    cost_cents: int
    spent_cents: int


class Day(msgspec.Struct, frozen=True):
    day: dt.date
    rewarded_scans: int
    participants: int
    spent_cents: int


class RegionFigures(msgspec.Struct, frozen=True):
    # An ISO 3166-2 province or a country, or "unknown" (no location shared, no IP database).
    region: str
    rewarded_scans: int
    spent_cents: int


class Spend(msgspec.Struct, frozen=True):
    budget_cents: int
    spent_cents: int
    remaining_cents: int
    daily_budget_cents: int | None


class CampaignStats(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    status: str
    totals: Totals
    spend: Spend
    draw_results: list[DrawResultCount]
    prizes: list[PrizeFigures]
    # The latest days first, in the campaign's time zone (at most DAYS_SHOWN).
    by_day: list[Day]
    # The regions with the most rewarded scans first (at most REGIONS_SHOWN).
    by_region: list[RegionFigures]


class Winner(msgspec.Struct, frozen=True):
    won_at: dt.datetime
    scan_id: uuid.UUID
    prize: str
    prize_kind: str
    slot: int
    member_id: uuid.UUID
    phone: str
    claim_status: str | None


async def campaign_stats(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, campaign_id: uuid.UUID
) -> CampaignStats:
    campaign = await campaigns.get_campaign(conn, brand_id, campaign_id)  # the brand check
    params = {"campaign_id": campaign_id, "days": DAYS_SHOWN, "regions": REGIONS_SHOWN}
    totals = await fetch_one(conn, QUERIES["campaign_totals"], params, Totals)
    assert totals is not None  # an aggregate always returns a row
    return CampaignStats(
        campaign_id=campaign_id,
        status=campaign.status,
        totals=totals,
        spend=Spend(
            budget_cents=campaign.budget_cents,
            spent_cents=campaign.spent_cents,
            remaining_cents=campaign.budget_cents - campaign.spent_cents,
            daily_budget_cents=campaign.daily_budget_cents,
        ),
        draw_results=await fetch_all(conn, QUERIES["draw_results"], params, DrawResultCount),
        prizes=await fetch_all(conn, QUERIES["prize_figures"], params, PrizeFigures),
        by_day=await fetch_all(conn, QUERIES["campaign_days"], params, Day),
        by_region=await fetch_all(conn, QUERIES["campaign_regions"], params, RegionFigures),
    )


async def winners_page(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    after: tuple[dt.datetime, uuid.UUID] | None,
    limit: int,
) -> list[Winner]:
    await campaigns.get_campaign(conn, brand_id, campaign_id)  # the brand check
    return await fetch_all(
        conn,
        QUERIES["winners_page"],
        {
            "campaign_id": campaign_id,
            "after_at": after[0] if after else None,
            "after_scan": after[1] if after else None,
            "limit": limit,
        },
        Winner,
    )


WINNER_COLUMNS = ["won_at", "prize", "prize_kind", "slot", "phone", "member_id", "scan_id", "claim_status"]


def winners_csv(winners: list[Winner], *, header: bool) -> bytes:
    """CSV rows for spreadsheets; the phone is masked to its last four digits, as everywhere."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(WINNER_COLUMNS)
    for w in winners:
        writer.writerow(
            [
                w.won_at.isoformat(),
                safe_cell(w.prize),
                w.prize_kind,
                w.slot,
                w.phone,
                w.member_id,
                w.scan_id,
                w.claim_status or "",
            ]
        )
    return out.getvalue().encode()
