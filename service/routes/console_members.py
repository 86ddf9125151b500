"""The console's member work beside search and a member's page: finance's points approvals, the
membership KPIs (of the brand or of one segment), and a member's timeline in words.

Decisions are calls to the JSON API from the page (finance only, never on one's own request).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Request, Response, get
from psycopg import AsyncConnection

from campaigns.members import adjustments, kpis, segments
from service.db import fetch_all
from service.guards import brand_of, principal_from, roles
from service.models import Role
from service.queries import load_queries
from service.routes import campaigns, member_admin
from service.routes.console_common import (
    CHINA,
    FormDay,
    FormId,
    day_range,
    form_day,
    form_uuid,
    local_time,
    render,
    texts,
    who,
)

if TYPE_CHECKING:
    from campaigns.members.profiles import TimelineEntry
    from service.models import Principal

QUERIES = load_queries("service.sql", "console.sql")
APPROVAL_READERS = (Role.FINANCE, Role.BRAND_ADMIN, Role.AUDITOR)
LISTED = 200
DEFAULT_DAYS = 30
# A timeline entry's details in the order a person reads them; keys not named here follow as they come.
DETAIL_ORDER: Final[dict[str, tuple[str, ...]]] = {
    "scan": ("product_id", "batch_id", "verdict", "scan_number", "region"),
    "points": ("amount", "kind", "reason", "source", "actor"),
    "coupon": ("template_id", "campaign_id", "uses", "usage_limit", "valid_until"),
    "draw": ("campaign_id", "prize_id", "result"),
    "tier": ("from_rank", "to_rank"),
    "note": ("author", "body"),
}
# Details that are ids of something with a name: the kind of name (see the `timeline_names` query).
NAMED: Final = {
    "campaign_id": "campaign",
    "prize_id": "prize",
    "product_id": "product",
    "batch_id": "batch",
    "template_id": "template",
    "from_rank": "tier",
    "to_rank": "tier",
    "actor": "actor",
    "author": "actor",
}
# What caused a points entry (`source` is `<cause>:<reference>`), in words.
SOURCES: Final = {
    "scan": "tl_source_scan",
    "adjustment": "tl_source_adjustment",
    "merge-from": "tl_source_merge_from",
    "merge-into": "tl_source_merge_into",
    "lot": "tl_source_lot",
    "import": "tl_source_import",
}

# Details whose values are codes: the text key each value has on the page, `{value}` standing for it.
WORDED: Final = {
    ("scan", "verdict"): "{value}",
    ("points", "kind"): "tl_points_{value}",
    ("draw", "result"): "tl_draw_{value}",
}
# Details that are moments: shown as the console's other times are.
MOMENTS: Final = frozenset({"valid_until"})


class Fact(msgspec.Struct, frozen=True):
    """One detail of a timeline entry as the page shows it: its label and value in words; behind a name,
    the id it stands for (`ref`, shown on hover) and the page that shows that object, when the role may
    open one (`href`)."""

    label: str
    text: str
    ref: str | None = None
    href: str | None = None


class TimelineRow(msgspec.Struct, frozen=True):
    kind: str
    at: dt.datetime
    facts: list[Fact]


class _Name(msgspec.Struct, frozen=True):
    kind: str
    ref: str
    name: str


@get("/console/approvals", opt=roles(*APPROVAL_READERS), include_in_schema=False)
async def approvals_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Points adjustments above the brand's threshold, waiting for finance (and the latest decided)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    pending = await adjustments.list_requests(db, brand_id, status="pending", after=None, limit=LISTED)
    return render(
        request,
        "console_approvals.html",
        title=texts(request)["approvals_nav"],
        user=await who(db, principal),
        pending=pending,
        threshold=await adjustments.approval_threshold(db, brand_id),
        may_decide=principal.role is Role.FINANCE,
        me=principal.actor,
    )


@get("/console/kpis", opt=roles(*member_admin.READERS), include_in_schema=False)
async def kpis_page(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    since: FormDay | None = None,
    until: FormDay | None = None,
    segment_id: FormId | None = None,
) -> Response[str]:
    """The membership KPIs over whole days in China's time (the last 30 by default), with their formulas."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    segment = form_uuid("segment_id", segment_id)
    today = dt.datetime.now(CHINA).date()
    last = form_day("until", until) or today
    first = form_day("since", since) or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    words = texts(request)
    figures = None
    # Days that end before they start have no figures: the page says so beside the filter instead.
    if first <= last:
        range_from, range_to = day_range(first, last)
        assert range_from is not None
        assert range_to is not None
        figures = await kpis.kpis(
            db,
            brand_id,
            range_from=range_from,
            range_to=range_to,
            now=dt.datetime.now(dt.UTC),
            segment_id=segment,
        )
    return render(
        request,
        "console_kpis.html",
        title=words["kpis_nav"],
        user=await who(db, principal),
        kpis=figures,
        range_error=words["reversed_range"] if figures is None else None,
        segments=await segments.list_all(db, brand_id),
        shown={"since": first.isoformat(), "until": last.isoformat(), "segment_id": str(segment or "")},
    )


async def timeline_in_words(
    db: AsyncConnection[Any],
    principal: Principal,
    entries: list[TimelineEntry],
    words: dict[str, str],
) -> list[TimelineRow]:
    """The member page's timeline: names instead of the ids of campaigns, prizes, products, batches (their
    lot), coupon templates, tiers and the people or tokens who acted, each id kept for hovering; a
    campaign links to its page for the roles that open campaigns. The JSON timeline keeps its ids."""
    wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
    for entry in entries:
        for key, value in entry.detail.items():
            kind = NAMED.get(key)
            if kind == "actor":
                who, _, raw = str(value).partition(":")
                if who in {"user", "token"} and (found := _uuid(raw)) is not None:
                    wanted[who].add(found)
            elif kind is not None and kind != "tier" and (found := _uuid(value)) is not None:
                wanted[kind].add(found)
    names = {
        (n.kind, n.ref): n.name
        for n in await fetch_all(
            db,
            QUERIES["timeline_names"],
            {
                "brand_id": brand_of(principal),
                "campaigns": list(wanted["campaign"]),
                "prizes": list(wanted["prize"]),
                "products": list(wanted["product"]),
                "batches": list(wanted["batch"]),
                "templates": list(wanted["template"]),
                "users": list(wanted["user"]),
                "tokens": list(wanted["token"]),
            },
            _Name,
        )
    }
    open_campaigns = principal.role in campaigns.VIEWERS
    rows = []
    for entry in entries:
        order = DETAIL_ORDER.get(entry.kind, ())
        keys = [k for k in order if k in entry.detail] + [k for k in entry.detail if k not in order]
        facts = [
            _fact(entry.kind, key, entry.detail[key], names, words, open_campaigns=open_campaigns)
            for key in keys
            if entry.detail[key] is not None
        ]
        rows.append(TimelineRow(kind=entry.kind, at=entry.at, facts=facts))
    return rows


def _fact(
    entry_kind: str,
    key: str,
    value: Any,
    names: dict[tuple[str, str], str],
    words: dict[str, str],
    *,
    open_campaigns: bool,
) -> Fact:
    label = words.get(f"tl_{key}", key)
    raw = str(value)
    if (text := _value_in_words(entry_kind, key, raw, words)) is not None:
        return Fact(label, text, ref=raw)
    if key == "source":
        cause, _, reference = raw.partition(":")
        if cause not in SOURCES:
            return Fact(label, raw)
        member = _uuid(reference) if cause in {"merge-from", "merge-into"} else None
        href = f"/console/members/{member}" if member is not None else None
        return Fact(label, words[SOURCES[cause]], ref=raw, href=href)
    kind = NAMED.get(key)
    name = names.get((kind, raw)) if kind is not None else None
    if name is None:
        return Fact(label, raw)
    if kind == "tier":
        return Fact(label, name, ref=f"#{raw}")
    href = f"/console/campaigns/{raw}" if kind == "campaign" and open_campaigns else None
    return Fact(label, name, ref=raw, href=href)


def _value_in_words(entry_kind: str, key: str, raw: str, words: dict[str, str]) -> str | None:
    """A code (a verdict, a ledger entry's kind, a draw's result) in words; a moment in the console's time."""
    worded = WORDED.get((entry_kind, key))
    if worded is not None:
        return words.get(worded.format(value=raw))
    if key in MOMENTS and (moment := _moment(raw)) is not None:
        return local_time(moment)
    return None


def _moment(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


PAGES = [approvals_page, kpis_page]
