"""Member events (triggers): facts about members written to an outbox, then fanned out to deliveries.

Generated inside the statistics refresh (`stats.refresh`), in its transaction:
- every refresh (each minute, the members it touched): first_scan, tier_change, dormancy_reached and
  reactivated (from the tier and lifecycle changes that same refresh wrote);
- the daily full refresh (the first after midnight UTC): birthday and points_expiring, by the brand's
  calendar (`member_event_settings`: time zone, notice days).
An event's id is derived from its fact (see `event_id`), so running a trigger twice never makes a second
event. `fan_out` then gives each new event one delivery per subscribed webhook, and one by SMS for the
events that have a text; `campaigns.members.webhooks` delivers them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from campaigns.members.errors import InvalidMemberInput
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "events.sql")

EventType = Literal[
    "first_scan", "tier_change", "dormancy_reached", "reactivated", "points_expiring", "birthday"
]
EVENT_TYPES: tuple[EventType, ...] = (
    "first_scan",
    "tier_change",
    "dormancy_reached",
    "reactivated",
    "points_expiring",
    "birthday",
)
# The events a member may also receive as a text message (with marketing consent).
SMS_TYPES: tuple[EventType, ...] = ("birthday", "points_expiring")
# The same namespace as the SQL function member_event_id (schema 0015).
EVENT_NAMESPACE = uuid.UUID("26977301-46a0-534a-b26e-144ff613db85")
# A first scan older than this when a refresh first sees it is history (e.g. when events were switched
# on), not news.
FIRST_SCAN_LOOKBACK = dt.timedelta(days=7)
# Deliveries that have not succeeded this long after the event are given up (status failed).
GIVE_UP_AFTER = dt.timedelta(hours=24)


class MemberEvent(msgspec.Struct, frozen=True):
    seq: int
    id: uuid.UUID
    brand_id: uuid.UUID
    member_id: uuid.UUID
    type: EventType
    occurred_at: dt.datetime
    created_at: dt.datetime
    # Small and never personal: ranks, stages, points, dates; no phone number or name.
    data: dict[str, Any]


class EventSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # points_expiring fires this many days before points lapse.
    expiry_notice_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    # The brand's calendar for birthdays and expiry dates (an IANA name such as Asia/Shanghai).
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "Asia/Shanghai"


class GenerateReport(msgspec.Struct, frozen=True):
    events: int
    webhook_deliveries: int
    sms_deliveries: int


class _Known(msgspec.Struct, frozen=True):
    known: bool


class _FanOut(msgspec.Struct, frozen=True):
    events: int
    webhooks: int
    texts: int


def event_id(brand_id: uuid.UUID, event_type: str, member_id: uuid.UUID, fact_key: str) -> uuid.UUID:
    """What member_event_id computes in SQL: receivers and tests can derive an event's id from its fact."""
    return uuid.uuid3(EVENT_NAMESPACE, f"{brand_id}/{event_type}/{member_id}/{fact_key}")


class _Seq(msgspec.Struct, frozen=True):
    seq: int


async def generate(
    conn: AsyncConnection[Any], *, member_ids: list[uuid.UUID] | str | None, now: dt.datetime, daily: bool
) -> GenerateReport:
    """Write the events of one refresh (`member_ids`: the members it touched; None: all), then fan out.

    Runs in the refresh's transaction, after its statistics, tiers and lifecycle stages are written.
    """
    params = {"member_ids": member_ids, "now": now, "since": now - FIRST_SCAN_LOOKBACK}
    last = await fetch_one(conn, QUERIES["last_event"], {}, _Seq)
    queries = ["first_scan_events", "tier_change_events", "lifecycle_events"]
    if daily:
        queries += ["points_expiring_events", "birthday_events"]
    for name in queries:
        await conn.execute(QUERIES[name], params)
    fanned = await fetch_one(
        conn,
        QUERIES["fan_out"],
        {
            "now": now,
            "after_seq": last.seq if last else 0,
            "give_up_after": GIVE_UP_AFTER,
            "sms_types": list(SMS_TYPES),
        },
        _FanOut,
    )
    assert fanned is not None
    return GenerateReport(
        events=fanned.events, webhook_deliveries=fanned.webhooks, sms_deliveries=fanned.texts
    )


async def list_events(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    event_type: EventType | None,
    member_id: uuid.UUID | None,
    after: int | None,
    limit: int,
) -> list[MemberEvent]:
    """The outbox in arrival order: a consumer may poll it with `after` instead of taking webhooks."""
    return await fetch_all(
        conn,
        QUERIES["list_events"],
        {"brand_id": brand_id, "type": event_type, "member_id": member_id, "after": after, "limit": limit},
        MemberEvent,
    )


async def get_settings(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> EventSettings:
    found = await fetch_one(conn, QUERIES["get_settings"], {"brand_id": brand_id}, EventSettings)
    assert found is not None
    return found


async def put_settings(conn: AsyncConnection[Any], brand_id: uuid.UUID, data: EventSettings) -> EventSettings:
    # PostgreSQL does the date arithmetic, so its time zone database is the one that must know the name.
    known = await fetch_one(conn, QUERIES["known_time_zone"], {"name": data.time_zone}, _Known)
    if known is None or not known.known:
        raise InvalidMemberInput("time_zone", f"unknown time zone {data.time_zone!r}")
    await conn.execute(QUERIES["put_settings"], {"brand_id": brand_id, **msgspec.structs.asdict(data)})
    return data
