"""Staff work on members over HTTP: points corrections (the members issue adds search and timelines)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Request, Router, post
from psycopg import AsyncConnection

from campaigns import ledger, rewards
from service import audit
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Role

ADJUSTERS = (Role.CUSTOMER_SERVICE, Role.FINANCE)


@post("/members/{member_id:uuid}/points/adjustments", opt=roles(*ADJUSTERS), tags=["members"])
async def adjust_points(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    member_id: uuid.UUID,
    data: rewards.AdjustmentIn,
) -> rewards.Adjustment:
    """Add or take points with a reason; audited, and written to the ledger as `adjust` entries."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    adjustment = await rewards.adjust_points(
        db, ledger.Member(brand_id, member_id), data, actor=principal.actor, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="points.adjust",
        object_type="member",
        object_id=member_id,
        after={"amount": data.amount, "reason": data.reason, "balance": adjustment.balance},
    )
    return adjustment


def member_admin_router() -> Router:
    return Router("/v1", route_handlers=[adjust_points], guards=[require_token])
