"""Raw ASGI middleware: request id, access log and latency metric for every HTTP request; HEAD on pages."""

from __future__ import annotations

import functools
import itertools
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Final

from litestar.enums import ScopeType

from service.logs import reset_request_id, set_request_id
from service.metrics import REQUEST_LATENCY

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from prometheus_client import Histogram

access_logger = logging.getLogger("onecode.access")
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
# Request ids: a random per-process prefix and a counter. Unique across processes without a system
# call per request (uuid4 reads the kernel's random source each time, a measurable cost here).
_ID_PREFIX = secrets.token_hex(6).encode()
_ID_SEQUENCE = itertools.count()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _latency_child(route: str, method: str, status: int) -> Histogram:
    # labels() validates and locks on every call; routes are templates, so this cache stays small.
    return REQUEST_LATENCY.labels(route, method, str(status))


class RequestContextMiddleware:
    """Written as plain ASGI rather than a framework middleware class: it wraps the hot scan path."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_REQUEST_ID.match(value):
                request_id = value
                break
        if not request_id:
            request_id = b"%s%010x" % (_ID_PREFIX, next(_ID_SEQUENCE))
        token = set_request_id(request_id.decode())
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
            _latency_child(route, method, status).observe(elapsed)
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            reset_request_id(token)


# The pages HEAD is answered on: the printed codes' consumer page (GS1 Digital Link, the short form, case
# labels), the console and the health checks. Named rather than "all but /v1/": the router also takes
# `//v1/...` for `/v1/...`, and a HEAD must never run an export only to drop it.
PAGE_PREFIXES: Final = ("/01/", "/00/", "/C/", "/c/", "/console", "/healthz", "/readyz")


class HeadAsGet:
    """HEAD on the pages as GET without the body.

    Uptime monitors and link checkers ask with HEAD, and litestar answers a GET-only route's HEAD with
    405. Pages are safe to render (a GET never records a scan); the JSON API keeps its 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope["method"] != "HEAD"
            or not scope["path"].startswith(PAGE_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # In place, and put back after: the request-context middleware around reads this scope's route
        # template (for the latency metric) and method (for the access log).
        scope["method"] = "GET"
        try:
            await self.app(scope, receive, send_headers_only)
        finally:
            scope["method"] = "HEAD"
