"""`onecode demo`: seed a demo brand into the configured database, idempotently, and say how to use it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
import psycopg

from antifraud import shipments
from campaigns import campaigns, coupons
from campaigns.draws import PrizeIn
from campaigns.members import tags, tiers
from codegen import batches, products
from codegen.errors import ObjectNotFound
from codegen.models import Batch, BatchIn, ItemRange, ProductIn
from codegen.printing import load_printing
from service import auth, brands
from service.models import BrandIn, Role, TokenIn

if TYPE_CHECKING:
    from service.settings import Settings

DEMO_SLUG = "demo"
DEMO_ACTOR = "demo-seed"
_TOKEN_FILE = "demo-token"  # noqa: S105 - a file name


DEMO_GTIN = "06901234567892"
DEMO_BATCH_SIZE = 1000
DEMO_SCAN_URLS = 20
DEMO_COUPON = "Demo 5 CNY off"
# Two distributors with their territories and the batch positions shipped to each; the rest of the
# batch stays unactivated (its codes scan as `not_activated`, like a leaked print file).
DEMO_DISTRIBUTORS = [
    ("East China Trading", ["CN-JS", "CN-SH", "CN-ZJ"], 0, 400),
    ("South China Distribution", ["CN-FJ", "CN-GD"], 400, 700),
]
DEMO_UNACTIVATED_URLS = 10


class DemoCampaign(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: campaigns.CampaignKind


class DemoDistributor(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    # A `distributor` token: it sees this distributor's shipments and reports only.
    token: str
    regions: list[str]


class DemoInfo(msgspec.Struct, frozen=True, kw_only=True):
    api: str
    brand_id: uuid.UUID
    token: str
    docs: str
    gtin: str
    product_id: uuid.UUID
    batch_id: uuid.UUID
    # Codes as printed (what a phone reads and POSTs to /v1/scans).
    scan_urls: list[str]
    # The same codes' consumer pages on this local server (printed codes say https://<scan domain>).
    page_urls: list[str]
    # A points campaign and a lucky draw on the demo product, both active.
    campaigns: list[DemoCampaign]
    # Genuine codes no shipment activated: they scan as `not_activated`.
    unactivated_urls: list[str]
    distributors: list[DemoDistributor]


def seed_demo(settings: Settings) -> DemoInfo:
    return asyncio.run(_seed(settings))


async def _seed(settings: Settings) -> DemoInfo:
    async with (
        await psycopg.AsyncConnection.connect(settings.database_url or "") as conn,
        conn.transaction(),
    ):
        brand = await brands.get_brand_by_slug(conn, DEMO_SLUG)
        if brand is None:
            brand = await brands.create_brand(
                conn, actor=DEMO_ACTOR, data=BrandIn(slug=DEMO_SLUG, name="Demo Brewery")
            )
        token = await _demo_token(
            conn, settings, brand.id, _TOKEN_FILE, TokenIn(role=Role.BRAND_ADMIN, name="demo admin")
        )
        batch = await _demo_batch(conn, settings, brand.id)
        printing = await load_printing(conn, brand.id, batch.id, settings.all_master_keys)
        demo_distributors = [
            await _demo_distributor(conn, settings, brand.id, batch, n, *spec)
            for n, spec in enumerate(DEMO_DISTRIBUTORS)
        ]
        template_id = await _demo_coupon_template(conn, brand.id)
        demo_campaigns = [
            await _demo_campaign(conn, settings, brand.id, data)
            for data in _campaign_settings(batch.product_id, template_id, dt.datetime.now(dt.UTC))
        ]
        await _demo_membership(conn, brand.id)
    urls = [url for chunk in printing.codes(settings.scan_domain, 0, DEMO_SCAN_URLS) for _, _, url in chunk]
    unshipped = DEMO_DISTRIBUTORS[-1][3]
    leaked = [
        url
        for chunk in printing.codes(settings.scan_domain, unshipped, unshipped + DEMO_UNACTIVATED_URLS)
        for _, _, url in chunk
    ]
    api = f"http://{settings.host}:{settings.port}"
    return DemoInfo(
        api=api,
        brand_id=brand.id,
        token=token,
        docs=f"{api}/schema/swagger",
        gtin=DEMO_GTIN,
        product_id=batch.product_id,
        batch_id=batch.id,
        scan_urls=urls,
        page_urls=[api + urlsplit(url).path for url in urls],
        campaigns=demo_campaigns,
        unactivated_urls=leaked,
        distributors=demo_distributors,
    )


async def _demo_membership(conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID) -> None:
    """A tier ladder and a tag, so that member views and segments have something to show."""
    if not await tiers.list_tiers(conn, brand_id):
        ladder = [
            tiers.TierIn(name="普通"),
            tiers.TierIn(name="银卡", min_points_earned=100, points_multiplier_pct=110),
            tiers.TierIn(name="金卡", min_points_earned=500, min_scans=10, points_multiplier_pct=150),
        ]
        await tiers.put_tiers(conn, brand_id, tiers.TiersIn(tiers=ladder))
    if not await tags.list_tags(conn, brand_id):
        await tags.create_tag(conn, brand_id, tags.TagIn(name="VIP"))
        await tags.create_tag(
            conn, brand_id, tags.TagIn(name="regular", rule=tags.TagRule(min_scans=3, within_days=90))
        )


async def _demo_coupon_template(conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID) -> uuid.UUID:
    """The coupon the demo draw gives away, created on the first run only."""
    found = await coupons.find_template_by_name(conn, brand_id, DEMO_COUPON)
    if found is None:
        terms = coupons.CouponTemplateIn(
            name=DEMO_COUPON,
            discount_kind="amount",
            amount_off_cents=500,
            min_spend_cents=2_000,
            valid_days=30,
        )
        found = await coupons.create_template(conn, brand_id=brand_id, data=terms)
    return found.id


def _campaign_settings(
    product_id: uuid.UUID, coupon_template_id: uuid.UUID, now: dt.datetime
) -> list[campaigns.CampaignIn]:
    """The demo's two campaigns: points per scan, and a lucky draw where most scans win nothing."""
    common: dict[str, Any] = {
        "starts_at": now - dt.timedelta(days=1),
        "ends_at": now + dt.timedelta(days=365),
        "eligibility": campaigns.Eligibility(product_ids=[product_id]),
        "stackable": True,
    }
    return [
        campaigns.CampaignIn(
            name="Demo points",
            kind="points",
            budget_cents=1_000_000,
            points_reward=campaigns.PointsReward(points=10),
            **common,
        ),
        campaigns.CampaignIn(
            name="Demo lucky draw",
            kind="lucky_draw",
            budget_cents=2_000_000,
            prizes=[
                PrizeIn(
                    name="Six-pack of Demo Lager", kind="physical", weight=5, stock=100, cost_cents=6_000
                ),
                PrizeIn(
                    name="50 bonus points", kind="points", weight=20, stock=1_000, cost_cents=50, points=50
                ),
                PrizeIn(name="8.88 CNY red packet", kind="cash", weight=1, stock=50, cost_cents=888),
                PrizeIn(
                    name=DEMO_COUPON,
                    kind="coupon",
                    weight=10,
                    stock=500,
                    cost_cents=500,
                    coupon_template_id=coupon_template_id,
                ),
            ],
            no_prize_weight=74,
            **common,
        ),
    ]


async def _demo_campaign(
    conn: psycopg.AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID, data: campaigns.CampaignIn
) -> DemoCampaign:
    """The campaign of that name, created and activated on the first run only (re-runs add nothing)."""
    found = await campaigns.find_campaign_by_name(conn, brand_id, data.name)
    if found is None:
        # Through the domain functions, so the rules are checked and the draw commits to its seed.
        found = await campaigns.create_campaign(conn, actor=DEMO_ACTOR, brand_id=brand_id, data=data)
        found = await campaigns.transition(
            conn,
            actor=DEMO_ACTOR,
            brand_id=brand_id,
            campaign_id=found.id,
            action="activate",
            master_keys=settings.all_master_keys,
            now=dt.datetime.now(dt.UTC),
        )
    return DemoCampaign(id=found.id, kind=found.kind)


async def _demo_batch(conn: psycopg.AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID) -> Batch:
    """The demo product and its first batch, created on the first run only."""
    try:
        product = await products.get_product_by_gtin(conn, brand_id, DEMO_GTIN)
    except ObjectNotFound:
        product = await products.create_product(
            conn,
            actor=DEMO_ACTOR,
            brand_id=brand_id,
            data=ProductIn(
                name="Demo Lager 500ml",
                gtin=DEMO_GTIN,
                sku="LAGER-500",
                facts={"origin": "Qingdao, Shandong", "shelf_life_days": 365, "abv": "4.3%"},
            ),
        )
    existing = await batches.list_batches(conn, brand_id, product_id=product.id, after=None, limit=1)
    if existing:
        return existing[0]
    return await batches.create_batch(
        conn,
        actor=DEMO_ACTOR,
        brand_id=brand_id,
        data=BatchIn(product_id=product.id, quantity=DEMO_BATCH_SIZE, lot="DEMO-LOT-1", line="line-1"),
        master_key=settings.master_key,
    )


async def _demo_distributor(
    conn: psycopg.AsyncConnection[Any],
    settings: Settings,
    brand_id: uuid.UUID,
    batch: Batch,
    number: int,
    name: str,
    territory: list[str],
    start: int,
    stop: int,
) -> DemoDistributor:
    """The distributor, its token and its shipment of the demo batch, made on the first run only."""
    found = next(
        (
            d
            for d in await shipments.list_distributors(conn, brand_id, after=None, limit=100)
            if d.name == name
        ),
        None,
    )
    if found is None:
        found = await shipments.create_distributor(
            conn, brand_id=brand_id, data=shipments.DistributorIn(name=name, regions=territory)
        )
        await shipments.ship(
            conn,
            actor=DEMO_ACTOR,
            brand_id=brand_id,
            data=shipments.ShipmentIn(
                distributor_id=found.id,
                reference=f"DEMO-{number + 1}",
                items=[ItemRange(batch_id=batch.id, start=start, stop=stop)],
            ),
            now=dt.datetime.now(dt.UTC),
        )
    token = await _demo_token(
        conn,
        settings,
        brand_id,
        f"demo-distributor-{number + 1}-token",
        TokenIn(role=Role.DISTRIBUTOR, name=name, distributor_id=found.id),
    )
    return DemoDistributor(id=found.id, name=name, token=token, regions=found.regions)


async def _demo_token(
    conn: psycopg.AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID, file_name: str, data: TokenIn
) -> str:
    """Reuse the token of an earlier run while it is valid for this brand, so re-runs add nothing."""
    token_file = settings.home / file_name
    if token_file.exists():
        secret = token_file.read_text().strip()
        principal = await auth.authenticate(conn, secret)
        if (
            principal is not None
            and principal.brand_id == brand_id
            and principal.role is data.role
            and principal.distributor_id == data.distributor_id
        ):
            return secret
    issued = await auth.create_token(
        conn, actor=DEMO_ACTOR, brand_id=brand_id, data=data, default_ttl_days=settings.token_ttl_days
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.secret)
    return issued.secret
