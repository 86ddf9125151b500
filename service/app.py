"""The app factory: `create_app(settings)` wires routes, dependencies, errors and the engines' lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import TYPE_CHECKING, Any

import redis.asyncio
from litestar import Litestar, Request
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from psycopg import AsyncConnection

from antifraud import regions
from antifraud.blocklist import Blocklist
from antifraud.regions import IpRegions
from antifraud.scanlog import ScanWriter
from antifraud.signals import Limits, Signals
from campaigns.book import CampaignBook
from campaigns.members.consents import LocationWithdrawals
from campaigns.members.enrolment import DevelopmentSms, Enrolment
from campaigns.members.phones import MemberVault
from campaigns.members.tokens import MemberTokens
from codegen.registry import CodeRegistry
from service import maintenance, metrics
from service.db import make_pool
from service.middleware import HeadAsGet, RequestContextMiddleware
from service.models import Principal
from service.problems import answer_problem, exception_handlers
from service.registry_follower import RegistryFollower
from service.routes import (
    admin,
    antifraud,
    campaigns,
    codes,
    console_auth,
    console_common,
    console_pages,
    consumer,
    coupons,
    fulfilment,
    health,
    member_admin,
    members,
    membership,
    reports,
    scans,
    shipments,
    webhooks,
)
from service.settings import Settings
from service.state import AppState, RedisClient
from service.users import DevelopmentNotifier

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from litestar.types import Receive, Scope, Send

logger = logging.getLogger("onecode.app")


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def make_redis(settings: Settings) -> RedisClient:
    """A client for REDIS_URL; `redis+cluster://host:port` (or `rediss+cluster://`) means Redis Cluster.

    For a cluster, one reachable node is enough: the client learns the others and the slot map from it.
    """
    url = settings.redis_url or ""
    scheme, _, rest = url.partition("://")
    # hiredis is picked up automatically when installed; timeouts keep a dead Redis from hanging requests.
    if scheme in CLUSTER_SCHEMES:
        return redis.asyncio.RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}",
            socket_timeout=2,
            socket_connect_timeout=2,
            max_connections=256,
        )
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=256,
    )


async def provide_db(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncConnection[Any], None]:
    """One transaction per request: committed when the handler returns, rolled back when it raises."""
    state: AppState = request.app.state.onecode
    async with state.pool.connection() as conn:
        yield conn


async def provide_report_db(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncConnection[Any], None]:
    """A connection for read-only reports: the read replica's when DATABASE_REPLICA_URL is set."""
    state: AppState = request.app.state.onecode
    async with state.report_pool.connection() as conn:
        yield conn


def provide_settings(request: Request[Any, Any, Any]) -> Settings:
    state: AppState = request.app.state.onecode
    return state.settings


def provide_redis(request: Request[Any, Any, Any]) -> RedisClient:
    state: AppState = request.app.state.onecode
    return state.redis


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


def create_app(settings: Settings) -> Litestar:
    """Build the ASGI app. Nothing touches the network until the lifespan starts."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("create_app needs concrete engine URLs; the CLI starts embedded engines first")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = make_pool(settings)
        # Reports may read from a replica (a little behind the primary); without one, the same pool.
        report_pool = (
            make_pool(settings, settings.database_replica_url) if settings.database_replica_url else pool
        )
        client = make_redis(settings)
        # wait=False: a database that is down at start must not keep the process from serving 503s.
        await pool.open(wait=False)
        if report_pool is not pool:
            await report_pool.open(wait=False)
        registry = CodeRegistry(settings.all_master_keys)
        blocklist = Blocklist()
        follower = RegistryFollower(pool, registry, blocklist)
        writer = ScanWriter(settings.database_url or "")
        book = CampaignBook(pool, settings.all_master_keys)
        vault = MemberVault(settings.all_master_keys)
        location_withdrawals = LocationWithdrawals(pool)
        sms = DevelopmentSms()
        signals = Signals(
            client,
            prefix=settings.redis_prefix,
            limits=Limits(
                device_per_minute=settings.scans_per_device_minute,
                ip_per_minute=settings.scans_per_ip_minute,
                member_per_minute=settings.scans_per_member_minute,
            ),
        )
        app.state.onecode = AppState(
            settings=settings,
            pool=pool,
            report_pool=report_pool,
            redis=client,
            registry=registry,
            blocklist=blocklist,
            registry_follower=follower,
            writer=writer,
            signals=signals,
            member_tokens=MemberTokens(settings.master_key, settings.old_master_keys),
            vault=vault,
            enrolment=Enrolment(client, vault, sms, prefix=settings.redis_prefix),
            location_withdrawals=location_withdrawals,
            campaigns=book,
            notifier=DevelopmentNotifier(),
            ip_regions=IpRegions(settings.ip_databases) if settings.ip_databases else None,
        )
        # The geocoder loads its data on first use: pay that here, not in a consumer's first scan.
        await asyncio.to_thread(regions.warm_up)
        await writer.start()
        await signals.start()
        following = asyncio.create_task(follower.follow(), name="registry-follower")
        campaign_following = asyncio.create_task(book.follow(), name="campaign-book")
        stopping = asyncio.Event()
        housekeeping = asyncio.create_task(
            maintenance.housekeeping(pool, stopping, retention_months=settings.scan_retention_months),
            name="housekeeping",
        )
        pool_sampling = asyncio.create_task(metrics.sample_pool(pool, stopping), name="pool-metrics")
        withdrawals_following = asyncio.create_task(
            location_withdrawals.follow(stopping), name="location-withdrawals"
        )
        member_refresh = asyncio.create_task(
            maintenance.refresh_members(settings.database_url or "", stopping), name="member-refresh"
        )
        event_delivery = asyncio.create_task(
            maintenance.deliver_member_events(
                pool,
                stopping,
                master_keys=settings.all_master_keys,
                vault=vault,
                sms=sms,
                allow_private=settings.webhook_private_targets,
            ),
            name="member-event-delivery",
        )
        # Everything loaded so far lives as long as the process: keep it out of the collector's full
        # passes, which otherwise walk it again every second or so under load (~80 ms, a p99 spike).
        gc.freeze()
        try:
            yield
        finally:
            follower.stop()
            book.stop()
            await campaign_following
            stopping.set()
            await asyncio.gather(
                following, housekeeping, pool_sampling, withdrawals_following, member_refresh, event_delivery
            )
            await writer.stop()
            await signals.stop()
            await client.aclose()
            await pool.close()
            if report_pool is not pool:
                await report_pool.close()

    return OneCodeApp(
        access_log=settings.access_log,
        route_handlers=[
            health.healthz,
            health.readyz,
            health.metrics,
            admin.admin_router(),
            codes.codes_router(),
            codes.public_router(),
            scans.scan,
            members.members_router(),
            campaigns.campaigns_router(),
            fulfilment.fulfilment_router(),
            coupons.coupons_router(),
            member_admin.member_admin_router(),
            membership.membership_router(),
            console_auth.console_auth_router(),
            console_pages.console_pages_router(),
            webhooks.webhooks_router(),
            shipments.shipments_router(),
            reports.reports_router(),
            antifraud.antifraud_router(),
            consumer.consumer_page,
            consumer.logistics_label_page,
        ],
        lifespan=[lifespan],
        dependencies={
            "db": Provide(provide_db),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "redis": Provide(provide_redis, sync_to_thread=False),
            "report_db": Provide(provide_report_db),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        exception_handlers={**exception_handlers(), NotFoundException: console_common.not_found},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="OneCode API",
            version="0.1.0",
            description="One-code-per-item scan-to-member engagement service.",
            path="/schema",
        ),
        logging_config=None,
        debug=False,
    )


class OneCodeApp(Litestar):
    """Litestar, except that `POST /v1/scans`, most of the traffic in a promotion, is answered before
    litestar's routing and middleware layers (about 30 us of the worker's ~190 us for a first scan).

    It is the handler litestar routes every other form of the path to (scans.answer_scan), inside the
    same request-context middleware (request id, latency metric, access log); its errors become the
    problems litestar's exception handlers make of them (problems.answer_problem).
    """

    def __init__(self, *, access_log: bool, **config: Any) -> None:
        super().__init__(**config)
        self._scan_route = RequestContextMiddleware(_answer_scan, access_log=access_log)
        # Around litestar as a whole rather than as its middleware, which runs only once a route
        # matched: a 404 or 405 from the router gets a request id and an access-log line too.
        self._routes = RequestContextMiddleware(HeadAsGet(super().__call__), access_log=access_log)
        # OpenAPI describes only litestar's own handlers: the route of the scan's declared contract
        # (never served) is handed to the OpenAPI plugin from a throwaway app, described when first
        # asked for, as the rest.
        # No logging config of its own: litestar's default would take over the root logger (plain text
        # lines without request ids instead of service.logs' JSON).
        contract = Litestar([scans.scan_contract], openapi_config=None, logging_config=None)
        self.plugins.get("OpenAPIPlugin").receive_route(contract.routes[0])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == scans.SCAN_PATH and scope["method"] == "POST":
            scope["app"] = scope["litestar_app"] = self
            await self._scan_route(scope, receive, send)
            return
        await self._routes(scope, receive, send)


async def _answer_scan(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await scans.answer_scan(scope, receive, send)
    except Exception as exc:  # noqa: BLE001 - every error is answered as its problem, as in litestar
        await answer_problem(scope, receive, send, exc)
