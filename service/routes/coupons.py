"""Coupons over HTTP: templates for marketers, and the till's check and redeem."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import Parameter
from psycopg import AsyncConnection

from campaigns import coupons
from campaigns.coupons import CouponCheck, CouponTemplate, CouponTemplateIn, RedeemIn, Redemption
from service import audit
from service.guards import brand_of, principal_from, require_token, roles
from service.models import Page, Role
from service.routes.admin import Limit, page
from service.settings import Settings

WRITERS = (Role.BRAND_ADMIN, Role.MARKETER)
READERS = (*WRITERS, Role.AUDITOR, Role.CUSTOMER_SERVICE, Role.FINANCE)
# The till, and people who may redeem on a customer's behalf.
TILLS = (Role.POINT_OF_SALE, Role.BRAND_ADMIN, Role.CUSTOMER_SERVICE)
# A code is 16 characters; room for dashes and spaces as a person typed them, no more.
Code = Annotated[str, Parameter(max_length=40)]


@post("/coupon-templates", opt=roles(*WRITERS), tags=["coupons"])
async def create_template(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: CouponTemplateIn
) -> CouponTemplate:
    """A coupon's terms: amount or percent off, minimum spend, validity, uses; campaigns issue it."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    template = await coupons.create_template(db, brand_id=brand_id, data=data)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="coupon_template.create",
        object_type="coupon_template",
        object_id=template.id,
        after=template,
    )
    return template


@get("/coupon-templates", opt=roles(*READERS), tags=["coupons"])
async def list_templates(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    limit = min(limit, settings.max_page_size)
    items = await coupons.list_templates(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda t: t.id)


@get("/coupon-templates/{template_id:uuid}", opt=roles(*READERS), tags=["coupons"])
async def get_template(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], template_id: uuid.UUID
) -> CouponTemplate:
    return await coupons.get_template(db, brand_of(principal_from(request)), template_id)


@get("/coupons/{code:str}", opt=roles(*TILLS), tags=["coupons"])
async def check_coupon(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    code: Code,
    spend_cents: Annotated[int | None, Parameter(ge=0, le=10**12)] = None,
) -> CouponCheck:
    """Whether the coupon can be used now, and (given `spend_cents`) what it would take off."""
    brand_id = brand_of(principal_from(request))
    return await coupons.check(db, brand_id, code, spend_cents=spend_cents, now=dt.datetime.now(dt.UTC))


@post("/coupons/{code:str}/redeem", opt=roles(*TILLS), status_code=200, tags=["coupons"])
async def redeem_coupon(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], code: Code, data: RedeemIn
) -> Redemption:
    """Use the coupon for an order. Retrying with the same `order_ref` returns the first answer, once used.

    Errors: `coupon-not-found`, `coupon-foreign` (another brand's), `coupon-expired`, `coupon-used`,
    `coupon-not-yet-valid`, `coupon-min-spend`, `order-already-redeemed` (same order, other amount).
    """
    principal = principal_from(request)
    return await coupons.redeem(
        db,
        brand_id=brand_of(principal),
        raw_code=code,
        data=data,
        actor=principal.actor,
        now=dt.datetime.now(dt.UTC),
    )


def coupons_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[create_template, list_templates, get_template, check_coupon, redeem_coupon],
        guards=[require_token],
    )
