"""Admin API for marketers: campaigns, their lifecycle steps and prize stock top-ups."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, get_args
from urllib.parse import quote

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.params import Parameter
from psycopg import AsyncConnection

from campaigns import campaigns, stats
from campaigns.campaigns import Action, Campaign, CampaignIn, CampaignPatch, CampaignStatus, TopUpIn
from campaigns.draws import Prize
from service import audit
from service.cursors import parse_time_cursor, time_cursor
from service.errors import InvalidField, NotFound
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Role
from service.routes.admin import Cursor, Limit, page
from service.settings import Settings
from service.state import AppState

WRITERS = (Role.BRAND_ADMIN, Role.MARKETER)
READERS = (*WRITERS, Role.AUDITOR)
# Customer service finds a campaign (name, status, dates, prizes) to answer a winner and export the
# winners, operations to ship its prizes (prize-claims); the live figures (stats) stay with READERS.
VIEWERS = (*READERS, Role.CUSTOMER_SERVICE, Role.OPERATIONS)
# The lifecycle steps by their name in the path, typed for the domain function.
ACTIONS: dict[str, Action] = {name: name for name in get_args(Action)}


def _split(ref: str, allowed: frozenset[str]) -> tuple[uuid.UUID, str]:
    """`<uuid>:<action>` (Google-style custom methods); litestar parameters are whole path segments."""
    raw_id, _, action = ref.partition(":")
    try:
        object_id = uuid.UUID(raw_id)
    except ValueError:
        raise NotFound("route", ref) from None
    if action not in allowed:
        raise NotFound("route", ref)
    return object_id, action


@post("/campaigns", opt=roles(*WRITERS), tags=["campaigns"])
async def create_campaign(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: CampaignIn
) -> Campaign:
    """Save a draft campaign; every rule is checked and each fault is named by its field."""
    principal = principal_from(request)
    campaign = await campaigns.create_campaign(
        db, actor=principal.actor, brand_id=brand_of(principal), data=data
    )
    return _warned(campaign, settings)


class Checked(msgspec.Struct, frozen=True):
    """A campaign that would save: advice that does not block saving, such as the legal prize cap."""

    valid: bool
    warnings: list[str]


@post("/campaigns:validate", opt=roles(*WRITERS), status_code=200, tags=["campaigns"])
async def validate_campaign(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: CampaignIn
) -> Checked:
    """Check a campaign as `POST /v1/campaigns` would, saving nothing: 422 names each fault by its field."""
    await campaigns.validate_campaign(db, brand_of(principal_from(request)), data)
    cap = settings.prize_legal_cap_cents
    return Checked(valid=True, warnings=campaigns.prize_warnings(data.prizes, legal_cap_cents=cap))


@get("/campaigns", opt=roles(*VIEWERS), tags=["campaigns"])
async def list_campaigns(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
    status: CampaignStatus | None = None,
) -> Page:
    limit = min(limit, settings.max_page_size)
    items = await campaigns.list_campaigns(
        db, brand_of(principal_from(request)), after=after, limit=limit + 1, status=status
    )
    return page([_warned(c, settings) for c in items], limit, lambda c: c.id)


@get("/campaigns/{campaign_id:uuid}", opt=roles(*VIEWERS), tags=["campaigns"])
async def get_campaign(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, campaign_id: uuid.UUID
) -> Campaign:
    campaign = await campaigns.get_campaign(db, brand_of(principal_from(request)), campaign_id)
    return _warned(campaign, settings)


@patch("/campaigns/{campaign_id:uuid}", opt=roles(*WRITERS), tags=["campaigns"])
async def update_campaign(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    data: CampaignPatch,
) -> Campaign:
    """Drafts change freely; a live campaign needs `"live_change": true` and the change is audited."""
    principal = principal_from(request)
    campaign = await campaigns.update_campaign(
        db, actor=principal.actor, brand_id=brand_of(principal), campaign_id=campaign_id, patch=data
    )
    await _publish(request, db)
    return _warned(campaign, settings)


@post("/campaigns/{campaign_action:str}", opt=roles(*WRITERS), status_code=200, tags=["campaigns"])
async def campaign_action(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, campaign_action: str
) -> Campaign:
    """`POST /v1/campaigns/{id}:schedule`, `:activate`, `:pause`, `:resume` or `:end`."""
    campaign_id, action = _split(campaign_action, frozenset(ACTIONS))
    principal = principal_from(request)
    campaign = await campaigns.transition(
        db,
        actor=principal.actor,
        brand_id=brand_of(principal),
        campaign_id=campaign_id,
        action=ACTIONS[action],
        master_keys=settings.all_master_keys,
        now=dt.datetime.now(dt.UTC),
    )
    await _publish(request, db)
    return _warned(campaign, settings)


def _warned(campaign: Campaign, settings: Settings) -> Campaign:
    return campaigns.with_warnings(campaign, legal_cap_cents=settings.prize_legal_cap_cents)


async def _publish(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> None:
    """Commit a change to a campaign's rules or status, and let this worker's scans see it at once.

    Other workers see it within a second (campaigns.book); the award function checks status and
    schedule itself, so a pause or an end is exact everywhere regardless.
    """
    await db.commit()
    state: AppState = request.app.state.onecode
    await state.campaigns.reload()


@post(
    "/campaigns/{campaign_id:uuid}/prizes/{prize_action:str}",
    opt=roles(*WRITERS),
    status_code=200,
    tags=["campaigns"],
)
async def top_up_prize(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    campaign_id: uuid.UUID,
    prize_action: str,
    data: TopUpIn,
) -> Prize:
    """`POST /v1/campaigns/{id}/prizes/{prize_id}:top-up` with `{"add": n}`: more stock for a prize."""
    prize_id, _ = _split(prize_action, frozenset({"top-up"}))
    principal = principal_from(request)
    return await campaigns.top_up_prize(
        db,
        actor=principal.actor,
        brand_id=brand_of(principal),
        campaign_id=campaign_id,
        prize_id=prize_id,
        data=data,
    )


@get("/campaigns/{campaign_id:uuid}/stats", opt=roles(*READERS), tags=["campaigns"])
async def campaign_stats(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], campaign_id: uuid.UUID
) -> stats.CampaignStats:
    """Live figures: rewarded scans, participants, points and prizes given, spend against budget, by day."""
    return await stats.campaign_stats(db, brand_of(principal_from(request)), campaign_id)


EXPORTERS = (Role.BRAND_ADMIN, Role.MARKETER, Role.CUSTOMER_SERVICE)
MAX_WINNERS_PER_FILE = 50_000


@get("/campaigns/{campaign_id:uuid}/winners.csv", opt=roles(*EXPORTERS), tags=["campaigns"])
async def export_winners(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    campaign_id: uuid.UUID,
    after: Cursor = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_WINNERS_PER_FILE)] = MAX_WINNERS_PER_FILE,
) -> Response[bytes]:
    """The draw's winners as CSV (phones masked to the last four digits), oldest first; audited.

    A longer list comes in files of `limit` rows: the `Link: <...>; rel="next"` header names the next.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    found = await stats.winners_page(db, brand_id, campaign_id, after=_winners_cursor(after), limit=limit + 1)
    winners = found[:limit]
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="campaign.winners_export",
        object_type="campaign",
        object_id=campaign_id,
        after={"rows": len(winners), "after": after},
    )
    headers = {"content-disposition": f'attachment; filename="winners-{campaign_id}.csv"'}
    if len(found) > limit:  # a file that ends on the last winner has no next file
        last = winners[-1]
        cursor = quote(time_cursor(last.won_at, last.scan_id))
        headers["link"] = (
            f'</v1/campaigns/{campaign_id}/winners.csv?after={cursor}&limit={limit}>; rel="next"'
        )
    return Response(
        stats.winners_csv(winners, header=after is None),
        media_type="text/csv",
        headers=headers,
    )


def _winners_cursor(after: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if after is None:
        return None
    try:
        return parse_time_cursor(after)
    except ValueError:
        raise InvalidField("after", "not a cursor from this list's Link header") from None


def campaigns_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_campaign,
            validate_campaign,
            list_campaigns,
            get_campaign,
            update_campaign,
            campaign_action,
            top_up_prize,
            campaign_stats,
            export_winners,
        ],
        guards=[require_token],
    )
