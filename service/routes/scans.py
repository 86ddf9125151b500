"""`POST /v1/scans`: the hot path. Verify in process, one Redis round trip, one group-committed write."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from typing import Annotated, Any, Literal

import msgspec
import psycopg
from litestar import asgi, post
from litestar.exceptions import ClientException, HTTPException, MethodNotAllowedException
from litestar.openapi import ResponseSpec
from litestar.types import HTTPResponseStartEvent, Receive, Scope, Send
from psycopg_pool import PoolTimeout

from antifraud import clones, regions
from antifraud.clients import client_ip, coarse, ip_prefix, ua_family
from antifraud.errors import Blocked, StorageUnavailable
from antifraud.scanlog import (
    CounterfeitRecord,
    Idempotency,
    ScanOutcome,
    ScanRecord,
    UnactivatedRecord,
    stored_response,
)
from campaigns.book import ScanReward
from campaigns.members.errors import InvalidMemberToken
from campaigns.members.tokens import MemberRef
from codegen.registry import MISS_OUTCOMES, CodeFacts, Outcome, Verification
from service.errors import Conflict, InvalidField, MalformedBody
from service.ids import uuid7
from service.metrics import REWARDS_BY_KIND, SCANS_BY_VERDICT
from service.state import AppState

MEMBER_COOKIE = "oc_member"
IDEMPOTENCY_TTL_S = 24 * 3600
# How long a replay waits for the original request to finish before giving up with 409.
IDEMPOTENCY_WAIT_S = 10.0

Verdict = Literal["genuine_first", "genuine_repeat", "suspect_clone", "not_activated", "counterfeit"]


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None


class ScanIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The scanned URL exactly as the phone read it, or its path.
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=r"^[^\x00]+$")]
    # Opaque, kept by the consumer page in local storage.
    device_id: Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    # Only sent with the consumer's consent.
    location: Location | None = None
    member_token: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class ProductOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    gtin: str | None
    facts: dict[str, Any]


class BatchOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    lot: str | None
    production_date: dt.date | None


class MemberOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    enrolled: bool
    points_balance: int


class ScanResult(msgspec.Struct, frozen=True):
    scan_id: uuid.UUID
    verdict: Verdict
    # Why a code is counterfeit (malformed, bad_tag, voided, ...) or a suspect clone (the signals past
    # their thresholds: devices, regions, travel); null otherwise.
    reason: str | None
    product: ProductOut | None
    batch: BatchOut | None
    scan_count: int | None
    first_scanned_at: dt.datetime | None
    member: MemberOut | None
    member_token: str | None
    # What the brand's campaigns gave this scan (points, draw outcomes); null when no campaign applied.
    reward: ScanReward | None = None


_decoder = msgspec.json.Decoder(ScanIn)
_encoder = msgspec.json.Encoder()


def decode_scan(body: bytes) -> ScanIn:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidField.from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedBody(str(exc)) from None


SCAN_PATH = "/v1/scans"


async def answer_scan(scope: Scope, receive: Receive, send: Send) -> None:
    """Verify a scanned code, tell first from repeat scans, enrol the scanner and log the scan.

    A raw ASGI handler (documented by `scan_contract`): litestar's request and response machinery
    costs about 50 us a request, a fifth of a first scan's CPU on the path that takes most of the
    traffic. `POST /v1/scans` reaches it directly (service.app.OneCodeApp); litestar routes every
    other form of the path to it (`scan`). Errors are raised, and answered as problems either way.
    """
    if scope.get("method") != "POST":  # a websocket has none
        raise MethodNotAllowedException(headers={"Allow": "POST"})
    state: AppState = scope["litestar_app"].state.onecode
    headers = _ScanHeaders.read(scope)
    data = decode_scan(await read_scan_body(receive, headers.content_length, state.settings.max_body_bytes))
    token = data.member_token or headers.member_cookie
    idempotency_key = headers.idempotency_key
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 128:  # noqa: PLR2004
        raise InvalidField("Idempotency-Key", "must be 1 to 128 characters")

    replay: bytes | None = None
    request_hash = b""
    if idempotency_key is not None:
        request_hash = hashlib.sha256(msgspec.json.encode(data)).digest()
        replay = await _claim_idempotency(state, data.device_id, idempotency_key, request_hash)
        if replay is not None:
            # The original answer may have been lost with its cookie: the replay sets it again.
            token_again = msgspec.json.decode(replay, type=_Replayed).member_token
            await _respond(scope, send, headers, replay, token_again)
            return
    try:
        body, member_token = await _process(state, scope, headers, data, token, request_hash)
    except BaseException:
        if idempotency_key is not None:
            await state.redis.delete(_idem_key(state, data.device_id, idempotency_key))
        raise
    if idempotency_key is not None:
        await state.redis.set(
            _idem_key(state, data.device_id, idempotency_key),
            b"done:" + request_hash + body,
            ex=IDEMPOTENCY_TTL_S,
        )
    await _respond(scope, send, headers, body, member_token)


scan = asgi(SCAN_PATH, copy_scope=False)(answer_scan)


@post(
    SCAN_PATH,
    tags=["scans"],
    status_code=200,
    operation_id="Scan",
    responses={
        200: ResponseSpec(data_container=ScanResult, description="The scan's verdict and what it earned")
    },
)
async def scan_contract(data: ScanIn) -> ScanResult:
    """Verify a scanned code, tell first from repeat scans, enrol the scanner and log the scan.

    Optional headers: `Idempotency-Key` (a retry with the same key, from the same device, returns the
    same answer and has one effect) and the consumer page's member cookie.
    """
    # Never served: `answer_scan` answers this path. This declaration is its OpenAPI description,
    # which litestar builds only for its own handlers (see service.app.OneCodeApp).
    raise NotImplementedError


async def read_scan_body(receive: Receive, announced: int | None, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` (as litestar's own handlers refuse it)."""
    if announced is not None and announced > limit:
        raise HTTPException(status_code=413, detail="Request Entity Too Large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientException("the client disconnected before sending its whole body")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail="Request Entity Too Large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _ScanHeaders:
    """The few headers a scan reads, found in one pass over the raw ones (no header mapping built)."""

    __slots__ = ("content_length", "forwarded_for", "idempotency_key", "member_cookie", "user_agent")

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.idempotency_key: str | None = None
        self.user_agent: str | None = None
        self.forwarded_for: str | None = None
        self.member_cookie: str | None = None

    @classmethod
    def read(cls, scope: Scope) -> _ScanHeaders:
        found = cls()
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    raise HTTPException(status_code=400, detail="Invalid content-length")
                found.content_length = int(value)
            elif name == b"idempotency-key":
                found.idempotency_key = value.decode("latin-1")
            elif name == b"user-agent":
                found.user_agent = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                found.forwarded_for = value.decode("latin-1")
            elif name == b"cookie" and found.member_cookie is None:
                found.member_cookie = _cookie(value.decode("latin-1"), MEMBER_COOKIE)
        return found


def _cookie(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header (our token needs no unquoting: see member_cookie)."""
    for pair in header.split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            return value
    return None


async def _process(
    state: AppState,
    scope: Scope,
    headers: _ScanHeaders,
    data: ScanIn,
    token: str | None,
    request_hash: bytes,
) -> tuple[bytes, str | None]:
    verification = await _verify(state, data.code)
    facts = verification.facts if verification.outcome is Outcome.GENUINE else None
    member = _member_from_token(state, token, facts.brand_id) if facts else None
    client_ip = _client_ip(scope, headers, state)
    if facts is not None:
        _refuse_blocked(state, facts.brand_id, data.device_id, member, client_ip)
    live = facts is not None and facts.activated
    # A member who withdrew location consent: whatever still sends one, the scan is checked without it
    # (the log leaves it out too, in record_scans, for scans the token does not name the member of).
    withdrew = member is not None and state.location_withdrawals.withdrew(member.member_id)
    location = None if withdrew or _null_island(data.location) else data.location
    region, city = _place(state, location, client_ip)
    signals = await state.signals.on_scan(
        device_id=data.device_id,
        ip=client_ip,
        # A code's counters start at activation; scans before count as suspicious logs per source.
        code=(facts.brand_id, facts.key_id, facts.index) if facts and live else None,
        region=region,
        location=(location.lat, location.lng) if location else None,
        member_id=member.member_id if member else None,
        # A genuine code seen before its activation: its later scans are worth a closer look.
        leaked_code=(facts.brand_id, facts.key_id, facts.index) if facts and not live else None,
    )
    scan_id = uuid7()
    now = dt.datetime.now(dt.UTC)
    user_agent = ua_family(headers.user_agent)
    if facts is not None and not live:
        if signals.log_counterfeit:
            await state.writer.record_unactivated(
                UnactivatedRecord(
                    scan_id=scan_id,
                    scanned_at=now,
                    facts=facts,
                    device_id=data.device_id,
                    ip_prefix=ip_prefix(client_ip),
                    lat=coarse(location.lat) if location else None,
                    lng=coarse(location.lng) if location else None,
                    ua_family=user_agent,
                    region=region,
                )
            )
        SCANS_BY_VERDICT["not_activated"].inc()
        return _encoder.encode(_unactivated_result(scan_id, facts)), None
    if facts is None:
        if signals.log_counterfeit:
            await state.writer.record_counterfeit(
                CounterfeitRecord(
                    scan_id=scan_id,
                    scanned_at=now,
                    claimed_brand_id=verification.claimed_brand_id,
                    outcome=verification.outcome.value,
                    code=data.code,
                    device_id=data.device_id,
                    ip_prefix=ip_prefix(client_ip),
                    lat=coarse(location.lat) if location else None,
                    lng=coarse(location.lng) if location else None,
                    ua_family=user_agent,
                    region=region,
                )
            )
        SCANS_BY_VERDICT["counterfeit"].inc()
        body = _encoder.encode(_counterfeit_result(scan_id, verification))
        return body, None

    try:
        await state.campaigns.ensure_loaded()
    except (psycopg.Error, PoolTimeout):
        raise StorageUnavailable("the campaigns are not loaded yet") from None
    risk = clones.assess(signals.code, state.registry.clone_rules(facts.brand_id))
    record = ScanRecord(
        scan_id=scan_id,
        scanned_at=now,
        facts=facts,
        device_id=data.device_id,
        member_id=member.member_id if member else None,
        member_enrolled=member.enrolled if member else False,
        ip_prefix=ip_prefix(client_ip),
        lat=coarse(location.lat) if location else None,
        lng=coarse(location.lng) if location else None,
        ua_family=user_agent,
        region=region,
        city=city,
        distributor_id=facts.distributor_id,
        # Sold outside the territory it was shipped to: grey market, attributed to that distributor.
        diverted=region is not None
        and bool(facts.territory)
        and not regions.within(region, facts.territory, city),
        risk=risk,
        # A copied code earns nothing: the first scan (the genuine buyer's, as a rule) already did.
        rewards=[] if risk.suspect else state.campaigns.reward_items(facts, scan_id, now, region),
    )
    minted: dict[str, str] = {}
    # What the answer said, for the metrics once the scan is committed (render may run twice).
    answered: dict[str, Any] = {}

    def render(outcome: ScanOutcome) -> bytes:
        if (
            token
            and member
            and (member.member_id, member.enrolled) == (outcome.member_id, outcome.member_enrolled)
            and state.member_tokens.is_current(token)
        ):
            minted["token"] = token  # the caller's token still says all there is to say
        else:
            ref = MemberRef(outcome.member_id, facts.brand_id, outcome.member_enrolled)
            minted["token"] = state.member_tokens.issue(ref)
        reward = state.campaigns.describe(facts.brand_id, outcome.awards)
        verdict: Verdict = (
            "genuine_first" if outcome.first else "suspect_clone" if risk.suspect else "genuine_repeat"
        )
        reason = ",".join(risk.reasons) if verdict == "suspect_clone" else None
        answered.update(verdict=verdict, reward=reward)
        result = _genuine_result(scan_id, verdict, reason, facts, outcome, minted["token"], reward)
        return _encoder.encode(result)

    key = headers.idempotency_key
    idempotency = None if key is None else Idempotency(key, request_hash, render)
    outcome = await state.writer.record(record, idempotency)
    if signals.code is not None and signals.code.scans < outcome.scan_count:
        await state.signals.repair_count((facts.brand_id, facts.key_id, facts.index), outcome.scan_count)
    body = render(outcome)
    _count(answered["verdict"], answered["reward"])
    return body, minted["token"]


async def _verify(state: AppState, code: str) -> Verification:
    """Verify in process; a miss that a stale cache could explain gets one (coalesced) reload first."""
    await state.registry_follower.ensure_loaded()
    verification = state.registry.verify(code)
    # A code shipped a moment ago through another worker is not in this copy yet: one (coalesced,
    # rate-limited) reload before calling it unactivated, as before calling a code counterfeit.
    unactivated = verification.facts is not None and not verification.facts.activated
    if (
        verification.outcome in MISS_OUTCOMES or unactivated
    ) and await state.registry_follower.refresh_if_stale():
        verification = state.registry.verify(code)
    return verification


def _null_island(location: Location | None) -> bool:
    """0,0 is where a phone without a fix says it is (in the sea off Ghana): no location, not a place
    whose scans would count as diverted goods or as a clone's travel."""
    return location is not None and location.lat == 0 and location.lng == 0


def _place(state: AppState, location: Location | None, ip: str | None) -> tuple[str | None, str | None]:
    """Where the scan happened (region, and in China the city when known): the consented location first,
    else the operator's IP database."""
    if location is not None:
        return regions.region_at(location.lat, location.lng), regions.city_at(location.lat, location.lng)
    if ip is not None and state.ip_regions is not None:
        return state.ip_regions.place_of(ip)
    return None, None


def _refuse_blocked(
    state: AppState, brand_id: uuid.UUID, device_id: str, member: MemberRef | None, ip: str | None
) -> None:
    """A device, member or network the brand blocked gets 403 `scan-blocked`; nothing is logged."""
    blocked = state.blocklist.blocked(
        brand_id,
        device_id=device_id,
        member_id=member.member_id if member else None,
        ip=ip,
        now=dt.datetime.now(dt.UTC),
    )
    if blocked is not None:
        raise Blocked(blocked)


def _member_from_token(state: AppState, token: str | None, brand_id: uuid.UUID) -> MemberRef | None:
    """A token for another brand (or a forged one) is ignored: the scan then counts for the device."""
    if not token:
        return None
    try:
        return state.member_tokens.read(token, brand_id=brand_id)
    except (InvalidMemberToken, ValueError):
        return None


def _client_ip(scope: Scope, headers: _ScanHeaders, state: AppState) -> str | None:
    peer = client[0] if (client := scope.get("client")) else None
    return client_ip(peer, headers.forwarded_for, trust_forwarded_for=state.settings.trust_forwarded_for)


def _count(verdict: Verdict, reward: ScanReward | None) -> None:
    SCANS_BY_VERDICT[verdict].inc()
    for line in reward.outcomes if reward else ():
        if line.coupon is not None:
            REWARDS_BY_KIND["coupon"].inc()
        elif line.result == "won":
            REWARDS_BY_KIND["prize"].inc()
        elif line.result == "awarded":
            REWARDS_BY_KIND["points"].inc()
        elif line.result == "no_prize":
            REWARDS_BY_KIND["no_prize"].inc()
        else:
            REWARDS_BY_KIND["refused"].inc()


def _genuine_result(
    scan_id: uuid.UUID,
    verdict: Verdict,
    reason: str | None,
    facts: CodeFacts,
    outcome: ScanOutcome,
    member_token: str,
    reward: ScanReward | None,
) -> ScanResult:
    return ScanResult(
        scan_id=scan_id,
        verdict=verdict,
        reason=reason,
        product=ProductOut(id=facts.product_id, name=facts.product_name, gtin=facts.gtin, facts=facts.facts),
        batch=BatchOut(id=facts.batch_id, lot=facts.lot, production_date=facts.production_date),
        scan_count=outcome.scan_count,
        first_scanned_at=outcome.first_scanned_at,
        member=MemberOut(
            id=outcome.member_id, enrolled=outcome.member_enrolled, points_balance=outcome.points_balance
        ),
        member_token=member_token,
        reward=reward,
    )


def _unactivated_result(scan_id: uuid.UUID, facts: CodeFacts) -> ScanResult:
    """A genuine code that was never shipped: the product is real, but this item should not be on sale."""
    return ScanResult(
        scan_id=scan_id,
        verdict="not_activated",
        reason="not_activated",
        product=ProductOut(id=facts.product_id, name=facts.product_name, gtin=facts.gtin, facts=facts.facts),
        batch=BatchOut(id=facts.batch_id, lot=facts.lot, production_date=facts.production_date),
        scan_count=None,
        first_scanned_at=None,
        member=None,
        member_token=None,
    )


def _counterfeit_result(scan_id: uuid.UUID, verification: Verification) -> ScanResult:
    return ScanResult(
        scan_id=scan_id,
        verdict="counterfeit",
        reason=verification.outcome.value,
        product=None,
        batch=None,
        scan_count=None,
        first_scanned_at=None,
        # Like product and batch: a code that is not ours says nothing about the scanner's membership.
        member=None,
        member_token=None,
    )


MEMBER_COOKIE_MAX_AGE_S = 400 * 24 * 3600


def member_cookie(scheme: str | None, member_token: str) -> dict[str, str]:
    """The consumer page's copy of the member token: httpOnly, so page scripts never read it.

    Formatted by hand because it is sent with nearly every scan and litestar's Cookie (built on
    http.cookies) costs more CPU than the rest of the response. Tokens are hex, dots and base64url:
    nothing in them needs quoting.
    """
    secure = "; Secure" if scheme == "https" else ""
    attributes = f"HttpOnly; Max-Age={MEMBER_COOKIE_MAX_AGE_S}; Path=/; SameSite=Lax{secure}"
    return {"set-cookie": f"{MEMBER_COOKIE}={member_token}; {attributes}"}


class _Replayed(msgspec.Struct):
    member_token: str | None = None


async def _respond(
    scope: Scope, send: Send, headers: _ScanHeaders, body: bytes, member_token: str | None
) -> None:
    headers_out: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
    ]
    # A client that already holds this token in its cookie need not be sent it again.
    if member_token is not None and headers.member_cookie != member_token:
        cookie = member_cookie(scope.get("scheme"), member_token)["set-cookie"]
        headers_out.append((b"set-cookie", cookie.encode("latin-1")))
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 200, "headers": headers_out}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _idem_key(state: AppState, device_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{device_id}\0{key}".encode()).hexdigest()[:40]
    return f"{state.settings.redis_prefix}idem:{{{digest}}}"


async def _claim_idempotency(state: AppState, device_id: str, key: str, request_hash: bytes) -> bytes | None:
    """None when this request may proceed; else the stored answer of the original request."""
    redis_key = _idem_key(state, device_id, key)
    deadline = asyncio.get_running_loop().time() + IDEMPOTENCY_WAIT_S
    while True:
        if await state.redis.set(redis_key, b"pending:" + request_hash, nx=True, ex=60):
            # Redis may have lost the key (flush, restart): PostgreSQL keeps answers for 24 hours too.
            async with state.pool.connection() as conn:
                stored = await stored_response(conn, device_id, key)
            if stored is None:
                return None
            stored_hash, response = stored
            await state.redis.set(redis_key, b"done:" + stored_hash + response, ex=IDEMPOTENCY_TTL_S)
            return _same_request(stored_hash, request_hash, response)
        value = await state.redis.get(redis_key)
        if not isinstance(value, bytes | None):
            raise TypeError("the Redis client must return bytes")
        if value is not None and value.startswith(b"done:"):
            return _same_request(value[5:37], request_hash, value[37:])
        if value is not None and value[8:] != request_hash:
            raise InvalidField("Idempotency-Key", "this key was used with a different request body")
        if asyncio.get_running_loop().time() > deadline:
            raise Conflict("the original request with this Idempotency-Key is still running")
        await asyncio.sleep(0.02)


def _same_request(stored_hash: bytes, request_hash: bytes, response: bytes) -> bytes:
    if stored_hash != request_hash:
        raise InvalidField("Idempotency-Key", "this key was used with a different request body")
    return response
