"""The console's campaign and segment pages: lists, the campaign editor, a campaign's live page, the
segment builder.

The pages read through the same domain functions as the API; every write (save, validate, activate,
count, export, ship a prize) is a call to the JSON API from the page, so rules, roles and audit are the
API's own.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.params import Parameter
from litestar.response import Redirect
from psycopg import AsyncConnection

from campaigns import campaigns as campaign_model
from campaigns import stats
from campaigns.fulfilment import ClaimStatus, cursor_of
from campaigns.members import segments, tags, tiers
from service.db import fetch_all
from service.guards import brand_of, principal_from, roles
from service.queries import load_queries
from service.routes import campaigns as campaign_routes
from service.routes import fulfilment, member_admin, membership
from service.routes.console_common import bars, render, texts, who
from service.settings import Settings

LISTED = 200  # campaigns: the console lists the newest this many
CLAIMS_LISTED = 50  # prize claims a page shows, each with its address (and a form while it waits)
PRODUCTS_LISTED = 1000
PRIZE_KINDS = ("physical", "points", "cash", "coupon")
# The editor's kinds; a coupon campaign (it names a coupon template) is made and changed through the API.
EDITABLE_KINDS = frozenset({"points", "lucky_draw"})
QUERIES = load_queries("service.sql", "console.sql")
# Zones a brand's campaigns usually run in; the API takes any IANA zone.
TIME_ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Europe/London",
    "UTC",
)


class CampaignRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    kind: str
    status: str
    # In the campaign's time zone, as its marketers set them (the list shows days).
    starts_local: dt.datetime
    ends_local: dt.datetime
    spent_cents: int
    budget_cents: int
    created_at: dt.datetime


class ProductRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    gtin: str | None
    sku: str | None


async def brand_products(db: AsyncConnection[Any], brand_id: uuid.UUID) -> list[ProductRow]:
    """The brand's products by name (a brand's catalogue is hundreds, not millions)."""
    return await fetch_all(
        db, QUERIES["brand_products"], {"brand_id": brand_id, "limit": PRODUCTS_LISTED}, ProductRow
    )


@get("/console/campaigns", opt=roles(*campaign_routes.VIEWERS), include_in_schema=False)
async def campaigns_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Every campaign of the brand with its status and spend; writers get the "new campaign" button."""
    principal = principal_from(request)
    found = await fetch_all(
        db, QUERIES["recent_campaigns"], {"brand_id": brand_of(principal), "limit": LISTED}, CampaignRow
    )
    return render(
        request,
        "console_campaigns.html",
        title=texts(request)["campaigns_nav"],
        user=await who(db, principal),
        campaigns=found,
        may_write=principal.role in campaign_routes.WRITERS,
    )


@get("/console/campaigns/new", opt=roles(*campaign_routes.WRITERS), include_in_schema=False)
async def new_campaign_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings
) -> Response[str]:
    """The editor: checked by the API as the marketer types, saved as a draft, then opened."""
    brand_id = brand_of(principal_from(request))
    return render(
        request,
        "console_campaign_new.html",
        title=texts(request)["new_campaign"],
        **await _editor_context(request, db, settings, brand_id),
        existing=None,
    )


async def _editor_context(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID
) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return {
        "user": await who(db, principal_from(request)),
        "products": await brand_products(db, brand_id),
        "segments": await segments.list_all(db, brand_id),
        "tiers": await tiers.list_tiers(db, brand_id),
        "prize_kinds": PRIZE_KINDS,
        "time_zones": TIME_ZONES,
        "legal_cap_cents": settings.prize_legal_cap_cents,
        "default_start": now,
        "default_end": now + dt.timedelta(days=30),
    }


@get(
    "/console/campaigns/{campaign_id:uuid}/edit", opt=roles(*campaign_routes.WRITERS), include_in_schema=False
)
async def edit_campaign_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, campaign_id: uuid.UUID
) -> Response[str] | Redirect:
    """The editor on a saved draft (a live campaign changes by its explicit steps, on its own page)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    campaign = await campaign_model.get_campaign(db, brand_id, campaign_id)
    if campaign.status != "draft" or campaign.kind not in EDITABLE_KINDS:
        return Redirect(f"/console/campaigns/{campaign_id}")
    return render(
        request,
        "console_campaign_new.html",
        title=texts(request)["edit_campaign"],
        **await _editor_context(request, db, settings, brand_id),
        existing=msgspec.to_builtins(campaign),
    )


@get("/console/campaigns/{campaign_id:uuid}", opt=roles(*campaign_routes.VIEWERS), include_in_schema=False)
async def campaign_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, campaign_id: uuid.UUID
) -> Response[str]:
    """One campaign: its rules, the lifecycle steps open to it, live figures, winners export. Customer
    service reads the campaign and exports winners, without the live figures (as the API's stats)."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    campaign = campaign_model.with_warnings(
        await campaign_model.get_campaign(db, brand_id, campaign_id),
        legal_cap_cents=settings.prize_legal_cap_cents,
    )
    figures = None
    days: list[tuple[str, int]] = []
    regions: list[tuple[str, int]] = []
    if principal.role in campaign_routes.READERS:
        figures = await stats.campaign_stats(db, brand_id, campaign_id)
        days = [(d.day.isoformat(), d.rewarded_scans) for d in reversed(figures.by_day)]
        regions = [(_region(request, r.region), r.rewarded_scans) for r in figures.by_region]
    steps = [
        action
        for action, (sources, _) in campaign_model.TRANSITIONS.items()
        if campaign.status in sources and principal.role in campaign_routes.WRITERS
    ]
    weight_total = sum(p.weight for p in campaign.prizes) + campaign.no_prize_weight
    return render(
        request,
        "console_campaign.html",
        title=campaign.name,
        user=await who(db, principal),
        campaign=campaign,
        starts_local=campaign.starts_at.astimezone(zoneinfo.ZoneInfo(campaign.time_zone)),
        ends_local=campaign.ends_at.astimezone(zoneinfo.ZoneInfo(campaign.time_zone)),
        stats=figures,
        steps=steps,
        chances={p.id: p.weight / weight_total if weight_total else 0.0 for p in campaign.prizes},
        days=bars(days),
        regions=bars(regions),
        may_export=principal.role in campaign_routes.EXPORTERS,
        may_ship=principal.role in fulfilment.SHIPPERS and any(p.kind == "physical" for p in campaign.prizes),
        may_edit=campaign.status == "draft"
        and campaign.kind in EDITABLE_KINDS
        and principal.role in campaign_routes.WRITERS,
    )


@get("/console/campaigns/{campaign_id:uuid}/prizes", opt=roles(*fulfilment.SHIPPERS), include_in_schema=False)
async def prizes_page(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    status: ClaimStatus = "claimed",
    after: Annotated[str | None, Parameter(max_length=80)] = None,
) -> Response[str]:
    """A draw's claimed physical prizes with the winners' addresses, those waiting to ship (each with a
    form that calls the ship API) or those shipped; "more" pages by the API's cursor. The read is the
    API's own, audited (customer service, who answers one winner at a time, is not shown the list)."""
    principal = principal_from(request)
    campaign = await campaign_model.get_campaign(db, brand_of(principal), campaign_id)
    found = await fulfilment.read_claims(
        db,
        principal,
        settings,
        campaign_id,
        action="campaign.prize_claims_read",
        status=status,
        member_id=None,
        after=after or None,
        limit=CLAIMS_LISTED,
    )
    claims = found[:CLAIMS_LISTED]
    return render(
        request,
        "console_prizes.html",
        title=f"{campaign.name} · {texts(request)['prize_claims']}",
        user=await who(db, principal),
        campaign=campaign,
        status=status,
        claims=claims,
        # No "more" link to an empty page.
        more={"status": status, "after": cursor_of(claims[-1])} if len(found) > CLAIMS_LISTED else None,
    )


@get("/console/segments", opt=roles(*member_admin.READERS), include_in_schema=False)
async def segments_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Saved segments (count on demand, export for the roles that may) and the builder with a live count."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    return render(
        request,
        "console_segments.html",
        title=texts(request)["segments"],
        user=await who(db, principal),
        segments=await segments.list_all(db, brand_id),
        tiers=await tiers.list_tiers(db, brand_id),
        tags=await tags.list_tags(db, brand_id),
        may_design=principal.role in membership.DESIGNERS,
        may_export=principal.role in membership.EXPORTERS,
    )


def _region(request: Request[Any, Any, Any], code: str) -> str:
    return texts(request)["unknown_region"] if code == "unknown" else code


PAGES = [campaigns_page, new_campaign_page, edit_campaign_page, campaign_page, prizes_page, segments_page]
