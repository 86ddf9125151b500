"""Prize fulfilment over HTTP: the claims of a draw with their addresses (audited reads), and shipping."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Router, get, post, put
from litestar.params import Parameter
from litestar.response import Stream
from psycopg import AsyncConnection

from campaigns import fulfilment
from campaigns.fulfilment import ClaimStatus, PrizeClaim, ShipmentIn
from service import audit
from service.cursors import parse_time_cursor
from service.errors import Forbidden, InvalidField
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Principal, Role
from service.routes.admin import Cursor, Limit, page
from service.settings import Settings

# Those who ship prizes read the addresses, mark them shipped and export the label file.
SHIPPERS = (Role.BRAND_ADMIN, Role.OPERATIONS)
# Customer service answers a winner asking after a prize (the address given, the tracking number), one
# winner at a time: it names the member (see _check_scope), and never takes the whole list as a file.
# Marketers, finance and auditors see the winners with phones masked (winners.csv), not addresses.
READERS = (*SHIPPERS, Role.CUSTOMER_SERVICE)
MAX_CLAIMS_PER_FILE = 50_000


def _check_scope(principal: Principal, member_id: uuid.UUID | None) -> None:
    if principal.role is Role.CUSTOMER_SERVICE and member_id is None:
        raise Forbidden("customer service reads one winner's claims at a time: pass member_id")


def _cursor(after: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if after is None:
        return None
    try:
        return parse_time_cursor(after)
    except ValueError:
        raise InvalidField("after", "not a cursor from this list") from None


async def read_claims(
    db: AsyncConnection[Any],
    principal: Principal,
    settings: Settings,
    campaign_id: uuid.UUID,
    *,
    action: str,
    status: ClaimStatus | None,
    member_id: uuid.UUID | None,
    after: str | None,
    limit: int,
) -> list[PrizeClaim]:
    """Up to `limit` + 1 claims (one more says a next page exists) with their addresses opened, the
    `limit` shown audited as `action`: the one read of addresses, for the API and the console alike."""
    _check_scope(principal, member_id)
    found = await fulfilment.claims_page(
        db,
        brand_of(principal),
        campaign_id,
        status=status,
        member_id=member_id,
        after=_cursor(after),
        limit=limit + 1,
        master_keys=settings.all_master_keys,
    )
    # Whose addresses were read is itself personal: the range read and the winners in it, no address.
    shown = found[:limit]
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_of(principal),
        action=action,
        object_type="campaign",
        object_id=campaign_id,
        after={
            "rows": len(shown),
            "status": status,
            "member_id": member_id,
            "after": after,
            "through": fulfilment.cursor_of(shown[-1]) if shown else None,
        },
    )
    return found


@get("/campaigns/{campaign_id:uuid}/prize-claims", opt=roles(*READERS), tags=["fulfilment"])
async def list_prize_claims(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    status: ClaimStatus | None = None,
    member_id: uuid.UUID | None = None,
    after: Cursor = None,
    limit: Limit = 50,
) -> Page:
    """The draw's claimed physical prizes, oldest win first, with the winners' addresses; audited.

    `status=claimed` is what waits to ship. Customer service names the winner with `member_id`.
    """
    limit = min(limit, settings.max_page_size)
    found = await read_claims(
        db,
        principal_from(request),
        settings,
        campaign_id,
        action="campaign.prize_claims_read",
        status=status,
        member_id=member_id,
        after=after,
        limit=limit,
    )
    return page(found, limit, fulfilment.cursor_of)


@get("/campaigns/{campaign_id:uuid}/prize-claims.csv", opt=roles(*SHIPPERS), tags=["fulfilment"])
async def export_prize_claims(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    status: ClaimStatus | None = None,
    after: Cursor = None,
    limit: Annotated[int, Parameter(ge=1, le=MAX_CLAIMS_PER_FILE)] = MAX_CLAIMS_PER_FILE,
) -> Stream:
    """The claims as CSV for address labels and a courier's bulk order (`status=claimed`: to ship); audited.

    Oldest win first. A longer list comes in files of `limit` rows: the `Link: <...>; rel="next"` header
    names the next file (without the header row).
    """
    found = await read_claims(
        db,
        principal_from(request),
        settings,
        campaign_id,
        action="campaign.prize_claims_export",
        status=status,
        member_id=None,
        after=after,
        limit=limit,
    )
    claims = found[:limit]
    # The audit entry must be durable before a single address leaves: commit now, not after the stream.
    await db.commit()
    headers = {"content-disposition": f'attachment; filename="prize-claims-{campaign_id}.csv"'}
    if len(found) > limit:  # a file that ends on the last claim has no next file
        query = f"after={quote(fulfilment.cursor_of(claims[-1]))}&limit={limit}"
        if status is not None:
            query += f"&status={status}"
        headers["link"] = f'</v1/campaigns/{campaign_id}/prize-claims.csv?{query}>; rel="next"'
    return Stream(fulfilment.claims_csv(claims, header=after is None), media_type="text/csv", headers=headers)


@post(
    "/campaigns/{campaign_id:uuid}/prize-claims/{scan_id:uuid}/ship",
    opt=roles(*SHIPPERS),
    status_code=200,
    tags=["fulfilment"],
)
async def ship_prize(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: ShipmentIn,
) -> PrizeClaim:
    """Mark a claimed prize shipped with its courier and tracking number, once (again: 409); audited.

    The answer holds the address as it stood when marked shipped, to check against the label: the winner
    can correct it until this moment, and not after.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    shipped = await fulfilment.ship(
        db,
        brand_id,
        campaign_id,
        scan_id,
        data,
        master_keys=settings.all_master_keys,
        now=dt.datetime.now(dt.UTC),
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="campaign.prize_shipped",
        object_type="prize_claim",
        object_id=f"{campaign_id}/{scan_id}",
        after={
            "member_id": shipped.member_id,
            "carrier": data.carrier,
            "tracking_number": data.tracking_number,
        },
    )
    return shipped


@put(
    "/campaigns/{campaign_id:uuid}/prize-claims/{scan_id:uuid}/shipment",
    opt=roles(*SHIPPERS),
    tags=["fulfilment"],
)
async def correct_shipment(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: ShipmentIn,
) -> PrizeClaim:
    """Correct a shipped prize's courier or tracking number (a mistyped label); audited with both.

    Not shipped yet: 409 `prize-not-shipped` (ship it with POST .../ship). When it shipped stays as it was.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before, claim = await fulfilment.correct_shipment(
        db, brand_id, campaign_id, scan_id, data, master_keys=settings.all_master_keys
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="campaign.prize_shipment_corrected",
        object_type="prize_claim",
        object_id=f"{campaign_id}/{scan_id}",
        before=before,
        after=data,
    )
    return claim


def fulfilment_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[list_prize_claims, export_prize_claims, ship_prize, correct_shipment],
        guards=[require_token],
    )
