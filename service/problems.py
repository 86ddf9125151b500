"""RFC 9457 problem details: the one place where exceptions become HTTP error responses."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import psycopg_pool
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from antifraud import errors as antifraud_errors
from campaigns import errors as campaign_errors
from campaigns.members import errors as member_errors
from codegen import errors as codegen_errors
from codegen.errors import CodegenError
from service import errors
from service.logs import current_request_id
from service.metrics import ENGINE_ERRORS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from litestar.types import Receive, Scope, Send

logger = logging.getLogger("onecode.problems")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# `type` URIs are stable identifiers clients may switch on; the page behind them is documentation.
PROBLEM_BASE = "https://onecode.dev/problems/"
MAX_DETAIL = 300


class FieldError(msgspec.Struct, omit_defaults=True):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None


# HTTP statuses raised by the framework itself (routing, body limits, validation).
_HTTP_TYPES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-error", "Request failed validation"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("unavailable", "Service temporarily unavailable"),
}

# Domain exceptions, most specific first: (exception class, status, type slug, title).
_DOMAIN_TYPES: list[tuple[type[Exception], int, str, str]] = [
    (errors.Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (errors.Forbidden, 403, "forbidden", "Forbidden"),
    (errors.NotFound, 404, "not-found", "Not found"),
    (errors.Conflict, 409, "conflict", "Conflict"),
    (errors.LimitReached, 409, "limit-reached", "Limit reached"),
    (errors.InvalidField, 422, "validation-error", "Request failed validation"),
    (errors.RateLimited, 429, "rate-limited", "Too many requests"),
    (errors.Unavailable, 503, "unavailable", "Service temporarily unavailable"),
    (errors.MalformedBody, 400, "malformed-body", "Malformed request body"),
    (codegen_errors.ObjectNotFound, 404, "not-found", "Not found"),
    (codegen_errors.StateConflict, 409, "conflict", "Conflict"),
    (CodegenError, 422, "validation-error", "Request failed validation"),
    (antifraud_errors.Throttled, 429, "rate-limited", "Too many requests"),
    (antifraud_errors.Blocked, 403, "scan-blocked", "Scans from this source are blocked"),
    (antifraud_errors.StorageUnavailable, 503, "unavailable", "Service temporarily unavailable"),
    (member_errors.OtpThrottled, 429, "rate-limited", "Too many requests"),
    (member_errors.OtpRejected, 422, "otp-rejected", "One-time password rejected"),
    (member_errors.InvalidMemberToken, 401, "invalid-member-token", "Invalid member token"),
    (member_errors.ObjectNotFound, 404, "not-found", "Not found"),
    (member_errors.MemberErased, 410, "member-erased", "Member erased"),
    (member_errors.NameTaken, 409, "conflict", "Conflict"),
    (member_errors.ApprovalRefused, 409, "approval-refused", "Approval refused"),
    (member_errors.SegmentInUse, 409, "segment-in-use", "Segment in use"),
    (member_errors.TagInUse, 409, "tag-in-use", "Tag in use"),
    (member_errors.TierInUse, 409, "tier-in-use", "Tier in use"),
    (member_errors.AttributeInUse, 409, "attribute-in-use", "Attribute in use"),
    (member_errors.LimitReached, 409, "limit-reached", "Limit reached"),
    (member_errors.DeliveryNotRetryable, 409, "delivery-not-retryable", "Delivery cannot be retried"),
    (member_errors.MembersError, 422, "validation-error", "Request failed validation"),
    (campaign_errors.CampaignNotFound, 404, "not-found", "Not found"),
    (campaign_errors.InvalidTransition, 409, "invalid-transition", "Invalid campaign status transition"),
    (
        campaign_errors.LiveChangeNotConfirmed,
        409,
        "live-change-not-confirmed",
        "Live campaign change not confirmed",
    ),
    (campaign_errors.CampaignLocked, 409, "campaign-locked", "Campaign cannot be changed"),
    (campaign_errors.CampaignOverlap, 409, "campaign-overlap", "Campaign overlaps another"),
    (campaign_errors.PrizeNotClaimable, 409, "prize-not-claimable", "Prize cannot be claimed"),
    # The slug names the reason: prize-not-claimed, prize-already-shipped, prize-not-physical.
    (campaign_errors.PrizeNotShippable, 409, "prize-not-shippable", "Prize cannot be shipped"),
    (campaign_errors.InsufficientPoints, 409, "insufficient-points", "Insufficient points"),
    (campaign_errors.CouponNotFound, 404, "coupon-not-found", "Coupon not found"),
    (campaign_errors.CouponForeign, 403, "coupon-foreign", "Coupon of another brand"),
    # The slug names the reason: coupon-expired, coupon-used, coupon-not-yet-valid.
    (campaign_errors.CouponNotUsable, 409, "coupon-not-usable", "Coupon cannot be used"),
    (campaign_errors.CouponBelowMinimumSpend, 422, "coupon-min-spend", "Spend below the coupon's minimum"),
    (campaign_errors.OrderAlreadyRedeemed, 409, "order-already-redeemed", "Order already redeemed"),
    (campaign_errors.CampaignError, 422, "validation-error", "Request failed validation"),
]


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    field_errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[Problem]:
    response_headers = dict(headers or {})
    request_id = current_request_id()
    if request_id is None:
        # Outside the request-context middleware (a test app of its own): still an id to quote.
        request_id = uuid.uuid4().hex
        response_headers["x-request-id"] = request_id
    if detail is not None and len(detail) > MAX_DETAIL:  # it may quote the request: never all of a long one
        detail = detail[: MAX_DETAIL - 1] + "…"
    problem = Problem(
        type=PROBLEM_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=field_errors,
        request_id=request_id,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=response_headers)


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    slug, title = _HTTP_TYPES.get(status, ("http-error", "HTTP error"))
    field_errors: list[FieldError] | None = None
    detail: str | None = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        status, (slug, title) = 422, _HTTP_TYPES[422]
        field_errors = [
            _field_error(
                _public_name(request, str(item.get("key", "body"))), str(item.get("message", "invalid"))
            )
            for item in exc.extra
            if isinstance(item, dict)
        ]
    elif status == 400 and isinstance(exc.__cause__, SerializationException | msgspec.DecodeError):  # noqa: PLR2004
        slug, title = "malformed-body", "Malformed request body"
    elif status >= 500:  # noqa: PLR2004
        detail = None  # never leak internals
    return problem_response(
        request,
        status=status,
        slug=slug,
        title=title,
        detail=detail,
        field_errors=field_errors,
        headers=exc.headers,
    )


# Litestar reports a missing or unknown field against the object that holds it ("data" for the body,
# "prizes[0]"); the field itself is in msgspec's message.
_MISSING = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def _public_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name the client sent: litestar reports a parameter under its Python name (`from_` for `?from=`)."""
    handler = request.scope.get("route_handler")
    field = handler.parsed_fn_signature.parameters.get(key) if handler is not None else None
    kwarg = getattr(field, "kwarg_definition", None)
    return getattr(kwarg, "name", None) or key


def _field_error(key: str, message: str) -> FieldError:
    """The field a client can point at: `name`, `prizes[0].weight` for a nested one, `body` for the whole
    body (litestar names it after the handler's parameter, `data`, which no client ever sees)."""
    if key == "data":
        if message == "'data'":  # litestar's KeyError for a request with no body at all
            return FieldError(field="body", message="a JSON body is required")
        key = "body"
    missing = _MISSING.match(message)
    if missing is None:
        return FieldError(field=key, message=message)
    parent = "" if key == "body" else key
    return FieldError(field=f"{parent}.{missing['name']}" if parent else missing["name"], message=message)


def _domain_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    match = next((entry for entry in _DOMAIN_TYPES if isinstance(exc, entry[0])), None)
    if match is None:  # pragma: no cover - the handler is registered only for the classes above
        return _unexpected(request, exc)
    _, status, slug, title = match
    if isinstance(exc, antifraud_errors.StorageUnavailable):
        # The scan writer's own connection (outside the pool) found PostgreSQL down.
        ENGINE_ERRORS.labels("postgres").inc()
    field = getattr(exc, "field", None)
    field_errors = [FieldError(field=field, message=str(exc))] if field else None
    # Domain validation may find several faults at once (campaign rules): report them all.
    if many := getattr(exc, "field_errors", None):
        field_errors = [FieldError(field=name, message=message) for name, message in many]
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return problem_response(
        request,
        status=status,
        slug=getattr(exc, "slug", None) or slug,
        title=title,
        detail=str(exc) or None,
        field_errors=field_errors,
        headers=headers,
    )


def _engine_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # The database or Redis is down or saturated: tell the client to retry soon, never pretend success.
    logger.warning("engine unavailable: %s: %s", type(exc).__name__, exc)
    ENGINE_ERRORS.labels("redis" if type(exc).__module__.startswith("redis") else "postgres").inc()
    return problem_response(
        request,
        status=503,
        slug="unavailable",
        title=_HTTP_TYPES[503][1],
        detail="A backing service is unavailable; retry shortly.",
        headers={"Retry-After": "2"},
    )


def _undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Problem]:
    # Bodies that are not valid UTF-8 fail inside the framework's decoding: still the client's mistake.
    return problem_response(
        request, status=400, slug="malformed-body", title="Malformed request body", detail=str(exc.reason)
    )


def _out_of_range(request: Request[Any, Any, Any], _exc: Exception) -> Response[Problem]:
    # A number the client sent (a cursor, an id, an amount) that no database column can hold: every
    # bound the API checks fits its column, so this is a parameter without one, never stored data.
    return problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Request failed validation",
        detail="a number in the request is out of range",
    )


def _refused_text(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[Problem]:
    # PostgreSQL's text and jsonb cannot hold a NUL character (psycopg refuses it in a text parameter, the
    # server in JSON): a client's string, since nothing of ours writes one. Other data errors are ours.
    if not isinstance(exc, psycopg.errors.UntranslatableCharacter) and "NUL" not in str(exc):
        return _unexpected(request, exc)
    return problem_response(
        request,
        status=422,
        slug="validation-error",
        title="Request failed validation",
        detail="text in the request may not contain a NUL character (\\u0000)",
    )


def _duplicate(request: Request[Any, Any, Any], exc: psycopg.errors.UniqueViolation) -> Response[Problem]:
    # The domain names the duplicates a client can cause ("a segment named ... exists"); one that slipped
    # through is still the client's request colliding with stored data, not a server fault. Logged, so
    # that it gets its own message.
    logger.warning("unnamed duplicate: %s", exc.diag.constraint_name)
    return problem_response(
        request, status=409, slug="conflict", title="Conflict", detail="the request collides with stored data"
    )


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    # msgspec refuses JSON nested deeper than the interpreter's recursion limit with a RecursionError,
    # which litestar's body decoding lets through: the client's mistake when it came from there.
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    if not frames or frames[-1] not in {"decode_json", "decode_msgpack"}:
        return _unexpected(request, exc)
    return problem_response(
        request,
        status=400,
        slug="malformed-body",
        title="Malformed request body",
        detail="JSON nested too deeply",
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    logger.error("unhandled error", exc_info=exc)
    return problem_response(
        request, status=HTTP_500_INTERNAL_SERVER_ERROR, slug="internal-error", title="Internal server error"
    )


def problem_for(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The problem litestar's exception handling makes of `exc` (the handler of its nearest class)."""
    handler = next(_HANDLERS[cls] for cls in type(exc).__mro__ if cls in _HANDLERS)
    return handler(request, exc)


async def answer_problem(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` as litestar's exception handling would, for a request answered before litestar's
    routing (`POST /v1/scans`, see service.app.OneCodeApp): the same handlers, the same problems."""
    request: Request[Any, Any, Any] = Request(scope, receive, send)
    response = problem_for(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


def exception_handlers() -> Mapping[type[Exception], Callable[..., Response[Any]]]:
    """The mapping handed to `Litestar(exception_handlers=...)`; litestar picks by the exception's MRO."""
    handlers: dict[type[Exception], Callable[..., Response[Any]]] = {
        HTTPException: _http_exception,
        UnicodeDecodeError: _undecodable,
        psycopg_pool.PoolTimeout: _engine_unavailable,
        psycopg.OperationalError: _engine_unavailable,
        psycopg.errors.NumericValueOutOfRange: _out_of_range,
        psycopg.DataError: _refused_text,
        psycopg.errors.UniqueViolation: _duplicate,
        RecursionError: _too_deep,
        redis.exceptions.ConnectionError: _engine_unavailable,
        redis.exceptions.TimeoutError: _engine_unavailable,
        # Redis Cluster failing over or moving slots (transient: the next try finds the right node).
        # Other RedisClusterExceptions are our bugs (keys of one call in two slots): a logged 500.
        redis.exceptions.ClusterError: _engine_unavailable,
        redis.exceptions.ClusterDownError: _engine_unavailable,
        redis.exceptions.TryAgainError: _engine_unavailable,
        redis.exceptions.AskError: _engine_unavailable,
        redis.exceptions.SlotNotCoveredError: _engine_unavailable,
        Exception: _unexpected,
    }
    for exc_type, *_ in _DOMAIN_TYPES:
        handlers[exc_type] = _domain_exception
    return handlers


_HANDLERS = exception_handlers()


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "FieldError",
    "Problem",
    "answer_problem",
    "exception_handlers",
    "problem_for",
    "problem_response",
]
