"""Brands' webhooks, and the delivery of member events to them (signed, retried) and by SMS to members.

A delivery is POSTed as JSON with the headers `X-OneCode-Event-Id`, `X-OneCode-Event-Type`,
`X-OneCode-Timestamp` (Unix seconds) and `X-OneCode-Signature: v1=<hex>`, the HMAC-SHA256 under the
webhook's secret (its UTF-8 bytes) of `<timestamp>.<body>`. A 2xx answer delivers it; anything else (an
error status, a refused connection, a timeout) is retried after 5 s, doubling up to 1 h (each +-20% at
random, so many retries spread out), until 24 h after the event: then it is given up (`failed`); staff may
retry it by hand. Delivery is at least once: an answer lost on the way back means a second POST of the
same event, so receivers drop event ids they have already seen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from campaigns.members.errors import DeliveryNotRetryable, InvalidMemberInput, LimitReached, ObjectNotFound
from campaigns.members.events import GIVE_UP_AFTER, EventType
from codegen import keys
from codegen.errors import UnsealError
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from campaigns.members.enrolment import SmsAdapter
    from campaigns.members.phones import MemberVault

logger = logging.getLogger("onecode.webhooks")
QUERIES = load_queries("campaigns.members.sql", "webhooks.sql")

MAX_WEBHOOKS = 20
REQUEST_TIMEOUT_S = 5.0
MAX_ADDRESSES = 3  # of a webhook host's addresses, tried in turn while none accepts a connection
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 3600.0
JITTER = 0.2
# Longer than any attempt (the request timeout): a delivery in flight is not taken by another worker.
LEASE = dt.timedelta(minutes=2)
BATCH_SIZE = 50
ERROR_CHARS = 300

DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]
Url = Annotated[str, msgspec.Meta(min_length=10, max_length=2000)]


class WebhookIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A receiver of the brand's member events: an http(s) URL; `event_types` null means every type."""

    url: Url
    event_types: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=6)] | None = None
    description: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class Webhook(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    url: str
    event_types: list[EventType] | None
    description: str | None
    active: bool
    created_by: str
    created_at: dt.datetime


class WebhookCreated(Webhook, frozen=True, kw_only=True):
    # Shown this once; it signs every delivery. Lost: delete the webhook and create another.
    secret: str


class Delivery(msgspec.Struct, frozen=True):
    id: int
    event_id: uuid.UUID
    event_type: EventType
    channel: Literal["webhook", "sms"]
    webhook_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime
    give_up_at: dt.datetime
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


class Attempt(msgspec.Struct, frozen=True):
    id: int
    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryLog(msgspec.Struct, frozen=True):
    delivery: Delivery
    attempts: list[Attempt]


class EventBody(msgspec.Struct, frozen=True):
    """What a webhook receives."""

    id: uuid.UUID
    type: EventType
    brand_id: uuid.UUID
    member_id: uuid.UUID
    occurred_at: dt.datetime
    created_at: dt.datetime
    data: dict[str, Any]


class DeliveryReport(msgspec.Struct, frozen=True):
    claimed: int
    delivered: int
    retrying: int
    failed: int
    cancelled: int


class _Claimed(msgspec.Struct, frozen=True):
    id: int
    brand_id: uuid.UUID
    channel: Literal["webhook", "sms"]
    attempts: int
    webhook_id: uuid.UUID | None
    url: str | None
    secret_sealed: bytes | None
    event_id: uuid.UUID
    event_type: EventType
    member_id: uuid.UUID
    occurred_at: dt.datetime
    created_at: dt.datetime
    data: dict[str, Any]
    brand_name: str
    phone_sealed: bytes | None
    phone_index: bytes | None
    data_key_sealed: bytes | None


class _Outcome(msgspec.Struct, frozen=True):
    status_code: int | None
    error: str | None
    duration_ms: int


class _Count(msgspec.Struct, frozen=True):
    webhooks: int


class _Id(msgspec.Struct, frozen=True):
    id: uuid.UUID


class _Status(msgspec.Struct, frozen=True):
    status: DeliveryStatus


_encoder = msgspec.json.Encoder()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-OneCode-Signature value; a receiver recomputes it and compares in constant time."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def retry_delay(attempt: int) -> dt.timedelta:
    """The wait after the `attempt`-th failed attempt: 5 s doubling to 1 h, +-20% at random."""
    base = min(FIRST_RETRY_S * 2 ** (attempt - 1), MAX_RETRY_S)
    # Not a secret: jitter only keeps a receiver's backlog from retrying in lockstep.
    return dt.timedelta(seconds=base * (1 - JITTER + 2 * JITTER * random.random()))  # noqa: S311


def sms_text(event_type: EventType, brand_name: str, data: dict[str, Any]) -> str | None:
    """The text a member receives for an event, or None for events that are not texted."""
    if event_type == "birthday":
        return f"{brand_name}: happy birthday! Thank you for being one of our members."
    if event_type == "points_expiring":
        points, expires_on = data["points"], data["expires_on"]
        return f"{brand_name}: {points} of your points expire on {expires_on}. Use them before then."
    return None


def secret_aad(webhook_id: uuid.UUID) -> bytes:
    return f"webhook-secret:{webhook_id}".encode()


def check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # an out-of-range or non-numeric port, or a bracketed host that is no address
    except ValueError as exc:
        raise InvalidMemberInput("url", f"not a valid URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidMemberInput("url", "an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would sit in clear in the database; the signature authenticates instead.
        raise InvalidMemberInput("url", "no user name or password in the URL")
    if any(ch.isspace() for ch in url):
        raise InvalidMemberInput("url", "no spaces in the URL")


async def private_target(url: str) -> str | None:
    """Why `url` must not be called, or None: a host that does not resolve, or resolves to an address
    that is not public (loopback, private, link-local, cloud metadata...). A webhook must never be a
    way into the operator's own network."""
    return (await resolve_target(url, allow_private=False))[1]


async def resolve_target(url: str, *, allow_private: bool) -> tuple[list[str], str | None]:
    """(the addresses to call `url` at, None), or ([], why it must not be called): see private_target.

    The addresses come in the resolver's order of preference, at most MAX_ADDRESSES of them: a delivery
    tries the next when it cannot connect to one (a site with an IPv6 address this network cannot reach,
    one host of several down). The request then goes to that very address (`pinned`): resolving the
    name again to connect would let a name that answered with a public address for the check answer
    with a private one for the request (DNS rebinding)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return [], f"{host} does not resolve"
    addresses = [ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]) for *_, sockaddr in found]
    if not addresses:
        return [], f"{host} does not resolve"
    if not allow_private:
        for address in addresses:
            if not address.is_global:
                return [], f"{host} resolves to an address that is not public ({address})"
    return list(dict.fromkeys(str(address) for address in addresses))[:MAX_ADDRESSES], None


def pinned(url: str, address: str) -> tuple[str, str, str]:
    """`url` with its host replaced by `address`, with the Host header and the TLS server name (SNI, and
    the name the certificate is checked against) that keep it the same request to the same site.

    Safe only on a client that reuses no connection (`delivery_client`): a connection is pooled by the
    address, so a kept one would carry another webhook's request over a TLS session checked for this one's
    name. The name goes out as ASCII (an internationalised name in its punycode form).
    """
    parts = urlsplit(url)
    host = httpx.URL(url).raw_host.decode("ascii")
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = (f"[{host}]" if ":" in host else host) + ("" if parts.port is None else f":{parts.port}")
    return urlunsplit(parts._replace(netloc=netloc)), host_header, host


def delivery_client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The HTTP client deliveries must use: a new connection per request (see `pinned`), no redirects
    followed, and no proxy from the environment (a proxy would be handed the pinned address as the name
    to check the certificate against). `verify`: the system's CAs, or a test's own."""
    return httpx.AsyncClient(
        verify=verify,
        timeout=REQUEST_TIMEOUT_S,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


async def create_webhook(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    data: WebhookIn,
    *,
    master_key: bytes,
    actor: str,
    allow_private: bool = False,
) -> WebhookCreated:
    check_url(data.url)
    if not allow_private and (reason := await private_target(data.url)):
        raise InvalidMemberInput("url", reason)
    await lock_definitions(conn, brand_id)  # two creations at the cap cannot both pass the count
    count = await fetch_one(conn, QUERIES["count_webhooks"], {"brand_id": brand_id}, _Count)
    if count is not None and count.webhooks >= MAX_WEBHOOKS:
        raise LimitReached("webhooks", MAX_WEBHOOKS)
    webhook_id = uuid.uuid4()
    secret = "whsec_" + secrets.token_urlsafe(32)
    created = await fetch_one(
        conn,
        QUERIES["create_webhook"],
        {
            "id": webhook_id,
            "brand_id": brand_id,
            "url": data.url,
            "secret_sealed": keys.seal(master_key, secret.encode(), aad=secret_aad(webhook_id)),
            "event_types": None if data.event_types is None else list(dict.fromkeys(data.event_types)),
            "description": data.description,
            "created_by": actor,
        },
        Webhook,
    )
    assert created is not None
    return WebhookCreated(**msgspec.structs.asdict(created), secret=secret)


async def list_page(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Webhook]:
    """A page of the brand's webhooks, oldest first, after the webhook `after`."""
    return await fetch_all(
        conn, QUERIES["list_webhooks"], {"brand_id": brand_id, "after": after, "limit": limit}, Webhook
    )


async def list_webhooks(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[Webhook]:
    """Every webhook of the brand, for the console: at most MAX_WEBHOOKS (`create_webhook` refuses more);
    the API pages them (`list_page`)."""
    return await list_page(conn, brand_id, after=None, limit=MAX_WEBHOOKS)


async def get_webhook(conn: AsyncConnection[Any], brand_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
    found = await fetch_one(
        conn, QUERIES["get_webhook"], {"brand_id": brand_id, "webhook_id": webhook_id}, Webhook
    )
    if found is None:
        raise ObjectNotFound("webhook", webhook_id)
    return found


async def delete_webhook(conn: AsyncConnection[Any], brand_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    """Stop sending to it; its pending deliveries are cancelled, its log stays."""
    gone = await fetch_one(
        conn, QUERIES["deactivate_webhook"], {"brand_id": brand_id, "webhook_id": webhook_id}, _Id
    )
    if gone is None:
        raise ObjectNotFound("webhook", webhook_id)


async def list_deliveries(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    webhook_id: uuid.UUID,
    *,
    status: DeliveryStatus | None,
    after: int | None,
    limit: int,
) -> list[Delivery]:
    await get_webhook(conn, brand_id, webhook_id)
    return await fetch_all(
        conn,
        QUERIES["list_deliveries"],
        {"brand_id": brand_id, "webhook_id": webhook_id, "status": status, "after": after, "limit": limit},
        Delivery,
    )


async def delivery_log(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, webhook_id: uuid.UUID, delivery_id: int
) -> DeliveryLog:
    """One delivery with every attempt made."""
    await get_webhook(conn, brand_id, webhook_id)
    params = {"brand_id": brand_id, "webhook_id": webhook_id, "delivery_id": delivery_id}
    delivery = await fetch_one(conn, QUERIES["get_delivery"], params, Delivery)
    if delivery is None:
        raise ObjectNotFound("delivery", delivery_id)
    attempts = await fetch_all(conn, QUERIES["list_attempts"], {"delivery_id": delivery_id}, Attempt)
    return DeliveryLog(delivery=delivery, attempts=attempts)


async def retry_delivery(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    webhook_id: uuid.UUID,
    delivery_id: int,
    *,
    now: dt.datetime,
) -> Delivery:
    """Send a delivery that gave up again, now, with a fresh day of retries."""
    log = await delivery_log(conn, brand_id, webhook_id, delivery_id)
    if log.delivery.status not in {"failed", "cancelled"}:
        raise DeliveryNotRetryable(delivery_id, log.delivery.status)
    params = {"brand_id": brand_id, "webhook_id": webhook_id, "delivery_id": delivery_id}
    await conn.execute(QUERIES["retry_delivery"], {**params, "now": now, "give_up_after": GIVE_UP_AFTER})
    found = await fetch_one(conn, QUERIES["get_delivery"], params, Delivery)
    assert found is not None
    return found


async def deliver_due(
    conn: AsyncConnection[Any],
    http: httpx.AsyncClient,
    *,
    master_keys: Sequence[bytes],
    vault: MemberVault,
    sms: SmsAdapter,
    now: dt.datetime,
    limit: int = BATCH_SIZE,
    allow_private: bool = False,
) -> DeliveryReport:
    """Attempt the deliveries due at `now` once each: webhooks concurrently, then texts one by one.

    `conn` must not be inside a transaction: the claim commits before any request goes out, so that no
    transaction stays open while receivers answer.
    """
    async with conn.transaction():
        claimed = await fetch_all(
            conn, QUERIES["claim_due"], {"now": now, "lease": LEASE, "limit": limit}, _Claimed
        )
    hooks = [c for c in claimed if c.channel == "webhook"]
    outcomes = await asyncio.gather(
        *(_post(http, c, master_keys, now, allow_private=allow_private) for c in hooks)
    )
    statuses: list[DeliveryStatus] = []
    async with conn.transaction():
        for delivery, outcome in zip(hooks, outcomes, strict=True):
            statuses.append(await _record(conn, delivery, outcome, now))
    # One at a time: an adapter may write through `conn` (DevelopmentSms does).
    statuses.extend([await _text(conn, c, vault, sms, now) for c in claimed if c.channel == "sms"])
    return DeliveryReport(
        claimed=len(claimed),
        delivered=statuses.count("delivered"),
        retrying=statuses.count("pending"),
        failed=statuses.count("failed"),
        cancelled=statuses.count("cancelled"),
    )


def body_of(delivery: _Claimed) -> bytes:
    return _encoder.encode(
        EventBody(
            id=delivery.event_id,
            type=delivery.event_type,
            brand_id=delivery.brand_id,
            member_id=delivery.member_id,
            occurred_at=delivery.occurred_at,
            created_at=delivery.created_at,
            data=delivery.data,
        )
    )


async def _post(
    http: httpx.AsyncClient,
    delivery: _Claimed,
    master_keys: Sequence[bytes],
    now: dt.datetime,
    *,
    allow_private: bool,
) -> _Outcome:
    assert delivery.url is not None
    # Checked again before each request: the name may point elsewhere since the webhook was made.
    addresses, reason = await resolve_target(delivery.url, allow_private=allow_private)
    if not addresses:
        return _Outcome(status_code=None, error=f"refused: {reason}"[:ERROR_CHARS], duration_ms=0)
    assert delivery.secret_sealed is not None
    assert delivery.webhook_id is not None
    body = body_of(delivery)
    timestamp = str(int(now.timestamp()))
    try:
        secret = keys.unseal(master_keys, delivery.secret_sealed, aad=secret_aad(delivery.webhook_id))
    except UnsealError as exc:
        return _Outcome(status_code=None, error=f"signing secret unreadable: {exc}", duration_ms=0)
    headers = {
        "content-type": "application/json",
        "user-agent": "OneCode-Webhooks/1",
        "x-onecode-event-id": str(delivery.event_id),
        "x-onecode-event-type": delivery.event_type,
        "x-onecode-timestamp": timestamp,
        "x-onecode-signature": sign(secret.decode(), timestamp, body),
    }
    started = time.monotonic()
    error = ""
    for address in addresses:
        url, host_header, server_name = pinned(delivery.url, address)
        try:
            # Streamed and never read: only the status matters, and a receiver cannot make us load a big body.
            async with http.stream(
                "POST",
                url,
                content=body,
                headers={**headers, "host": host_header},
                timeout=REQUEST_TIMEOUT_S,
                extensions={"sni_hostname": server_name},
            ) as response:
                status_code = response.status_code
            break
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the receiver: the next address cannot make it a duplicate.
            error = f"{type(exc).__name__} at {address}: {exc}"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"
            return _Outcome(status_code=None, error=error[:ERROR_CHARS], duration_ms=_ms_since(started))
        except Exception as exc:  # one bad webhook must not keep the batch's other outcomes recorded
            logger.exception("webhook delivery %s failed unexpectedly", delivery.event_id)
            error = f"{type(exc).__name__}: {exc}"
            return _Outcome(status_code=None, error=error[:ERROR_CHARS], duration_ms=_ms_since(started))
    else:
        return _Outcome(status_code=None, error=error[:ERROR_CHARS], duration_ms=_ms_since(started))
    ok = 200 <= status_code < 300  # noqa: PLR2004 - the 2xx range
    return _Outcome(
        status_code=status_code, error=None if ok else f"HTTP {status_code}", duration_ms=_ms_since(started)
    )


async def _text(
    conn: AsyncConnection[Any], delivery: _Claimed, vault: MemberVault, sms: SmsAdapter, now: dt.datetime
) -> DeliveryStatus:
    text = sms_text(delivery.event_type, delivery.brand_name, delivery.data)
    if text is None or delivery.phone_sealed is None or delivery.phone_index is None:
        # Consent withdrawn, phone gone or member erased since the event: nothing may be sent.
        async with conn.transaction():
            await conn.execute(
                QUERIES["cancel_delivery"], {"delivery_id": delivery.id, "reason": "no phone or no consent"}
            )
        return "cancelled"
    started = time.monotonic()
    async with conn.transaction():
        try:
            # A savepoint: an adapter that fails half-way through its own writes leaves the record possible.
            async with conn.transaction():
                key = (
                    None
                    if delivery.data_key_sealed is None
                    else vault.unwrap(delivery.member_id, delivery.data_key_sealed)
                )
                phone = vault.unseal(key, delivery.brand_id, "phone", delivery.phone_sealed).decode()
                await sms.send(
                    conn,
                    brand_id=delivery.brand_id,
                    phone_e164=phone,
                    phone_index=delivery.phone_index,
                    body=text,
                )
            outcome = _Outcome(status_code=None, error=None, duration_ms=_ms_since(started))
        except Exception as exc:  # noqa: BLE001 - whatever the adapter raises is a failed attempt, retried
            error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
            outcome = _Outcome(status_code=None, error=error, duration_ms=_ms_since(started))
        return await _record(conn, delivery, outcome, now)


async def _record(
    conn: AsyncConnection[Any], delivery: _Claimed, outcome: _Outcome, now: dt.datetime
) -> DeliveryStatus:
    ok = outcome.error is None
    retry_at = now if ok else now + retry_delay(delivery.attempts + 1)
    recorded = await fetch_one(
        conn,
        QUERIES["record_attempt"],
        {
            "delivery_id": delivery.id,
            "now": now,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "ok": ok,
            "retry_at": retry_at,
        },
        _Status,
    )
    status: DeliveryStatus = "cancelled" if recorded is None else recorded.status
    if status == "failed":
        logger.warning(
            "gave up delivering event %s (%s) after %d attempts: %s",
            delivery.event_id,
            # Not the URL: receivers often carry a token in it.
            f"webhook {delivery.webhook_id}" if delivery.webhook_id else delivery.channel,
            delivery.attempts + 1,
            outcome.error,
        )
    return status


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
