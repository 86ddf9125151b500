"""Member events over HTTP: the outbox, the brand's webhooks, their delivery log, the event settings."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Request, Router, delete, get, patch, post, put
from psycopg import AsyncConnection

from campaigns.members import events, webhooks
from service import audit
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Role
from service.patching import apply_patch
from service.routes.admin import Limit, page
from service.routes.member_admin import READERS
from service.settings import Settings

# Webhooks send member data out of the building: only the brand's administrators manage them.
MANAGERS = (Role.BRAND_ADMIN,)


@post("/webhooks", opt=roles(*MANAGERS), tags=["webhooks"])
async def create_webhook(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: webhooks.WebhookIn
) -> webhooks.WebhookCreated:
    """Register a receiver; the answer holds its signing secret, shown this once."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    created = await webhooks.create_webhook(
        db,
        brand_id,
        data,
        master_key=settings.master_key,
        actor=principal.actor,
        allow_private=settings.webhook_private_targets,
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="webhook.create",
        object_type="webhook",
        object_id=created.id,
        after=data,
    )
    return created


@get("/webhooks", opt=roles(*MANAGERS), tags=["webhooks"])
async def list_webhooks(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    """The brand's webhooks (deleted ones are not listed), oldest first."""
    limit = min(limit, settings.max_page_size)
    items = await webhooks.list_page(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda w: w.id)


@delete("/webhooks/{webhook_id:uuid}", opt=roles(*MANAGERS), tags=["webhooks"], status_code=204)
async def delete_webhook(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], webhook_id: uuid.UUID
) -> None:
    """Stop sending to it: its pending deliveries are cancelled; its delivery log is kept."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await webhooks.get_webhook(db, brand_id, webhook_id)
    await webhooks.delete_webhook(db, brand_id, webhook_id)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="webhook.delete",
        object_type="webhook",
        object_id=webhook_id,
        before=before,
    )


@get("/webhooks/{webhook_id:uuid}/deliveries", opt=roles(*MANAGERS), tags=["webhooks"])
async def list_deliveries(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    webhook_id: uuid.UUID,
    status: webhooks.DeliveryStatus | None = None,
    after: int | None = None,
    limit: Limit = 50,
) -> Page:
    """The webhook's delivery log, oldest first: status, attempts, the last answer or error."""
    limit = min(limit, settings.max_page_size)
    items = await webhooks.list_deliveries(
        db, brand_of(principal_from(request)), webhook_id, status=status, after=after, limit=limit + 1
    )
    return page(items, limit, lambda d: d.id)


@get("/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:int}", opt=roles(*MANAGERS), tags=["webhooks"])
async def get_delivery(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], webhook_id: uuid.UUID, delivery_id: int
) -> webhooks.DeliveryLog:
    """One delivery and every attempt at it."""
    return await webhooks.delivery_log(db, brand_of(principal_from(request)), webhook_id, delivery_id)


@post(
    "/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:int}/retry",
    opt=roles(*MANAGERS),
    tags=["webhooks"],
    status_code=200,
)
async def retry_delivery(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], webhook_id: uuid.UUID, delivery_id: int
) -> webhooks.Delivery:
    """Send a delivery that gave up (or was cancelled) again, with a fresh day of retries."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    retried = await webhooks.retry_delivery(
        db, brand_id, webhook_id, delivery_id, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="webhook.delivery_retry",
        object_type="webhook_delivery",
        object_id=delivery_id,
        after={"webhook_id": webhook_id, "event_id": retried.event_id},
    )
    return retried


@get("/member-events", opt=roles(*READERS), tags=["webhooks"])
async def list_events(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    type: events.EventType | None = None,  # noqa: A002 - the query parameter's public name
    member_id: uuid.UUID | None = None,
    after: int | None = None,
    limit: Limit = 50,
) -> Page:
    """The brand's member events in arrival order (`seq`); poll with `after` as an alternative to webhooks."""
    limit = min(limit, settings.max_page_size)
    items = await events.list_events(
        db,
        brand_of(principal_from(request)),
        event_type=type,
        member_id=member_id,
        after=after,
        limit=limit + 1,
    )
    return page(items, limit, lambda e: e.seq)


@get("/member-event-settings", opt=roles(*READERS), tags=["webhooks"])
async def get_event_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any]
) -> events.EventSettings:
    return await events.get_settings(db, brand_of(principal_from(request)))


@put("/member-event-settings", opt=roles(*MANAGERS), tags=["webhooks"])
async def put_event_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: events.EventSettings
) -> events.EventSettings:
    """How many days ahead points_expiring fires, and the time zone of birthdays and expiry dates."""
    return await _save_event_settings(request, db, data)


@patch("/member-event-settings", opt=roles(*MANAGERS), tags=["webhooks"])
async def patch_event_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: dict[str, Any]
) -> events.EventSettings:
    """Change only the settings named (PUT replaces them all: what it leaves out goes back to its default)."""
    current = await events.get_settings(db, brand_of(principal_from(request)))
    return await _save_event_settings(request, db, apply_patch(current, data))


async def _save_event_settings(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: events.EventSettings
) -> events.EventSettings:
    principal = principal_from(request)
    brand_id = brand_of(principal)
    before = await events.get_settings(db, brand_id)
    saved = await events.put_settings(db, brand_id, data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="member_event_settings.update",
        object_type="member_event_settings",
        object_id=brand_id,
        before=before,
        after=saved,
    )
    return saved


def webhooks_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_webhook,
            list_webhooks,
            delete_webhook,
            list_deliveries,
            get_delivery,
            retry_delivery,
            list_events,
            get_event_settings,
            put_event_settings,
            patch_event_settings,
        ],
        guards=[require_token],
    )
