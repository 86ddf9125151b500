"""The one guard that decides access to every admin route: token, role, tenant and rate."""

from __future__ import annotations

import hmac
import time
import uuid
from typing import TYPE_CHECKING, Any

from service import auth, users
from service.errors import Forbidden, NotFound, RateLimited, Unauthenticated
from service.models import Principal, Role

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers.base import BaseRouteHandler

    from service.state import AppState

# The console's session cookie (see service/users.py).
CONSOLE_COOKIE = "onecode_console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where a session's CSRF token waits for the console page that must carry it (service.routes.console_common).
CSRF_STATE = "csrf_token"
# Every role of a brand; handlers name the subset they accept in `opt={"roles": ...}`.
ANY_BRAND_ROLE = frozenset(Role) - {Role.PLATFORM_ADMIN}


def roles(*allowed: Role) -> dict[str, Any]:
    """Handler options naming who may call it: `@get(..., opt=roles(Role.BRAND_ADMIN))`."""
    return {"roles": frozenset(allowed)}


async def require_token(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    allowed: frozenset[Role] | None = handler.opt.get("roles")
    if allowed is None:
        # Fail closed: an admin route that forgot to declare its roles is reachable by nobody.
        raise Forbidden("this route declares no roles")
    state: AppState = connection.app.state.onecode
    authorization = connection.headers.get("authorization", "")
    session_id = connection.cookies.get(CONSOLE_COOKIE)
    if not authorization and session_id:
        principal = await _session_principal(connection, state, session_id)
    else:
        principal = await _token_principal(state, authorization)
    await _check_rate(state, principal)
    if principal.role not in allowed:
        raise Forbidden(f"the {principal.role} role may not do this")
    # Objects of another tenant are reported as missing, never as forbidden: their existence is private.
    path_brand = connection.path_params.get("brand_id")
    if (
        path_brand is not None
        and principal.role is not Role.PLATFORM_ADMIN
        and uuid.UUID(str(path_brand)) != principal.brand_id
    ):
        raise NotFound("brand", path_brand)
    connection.state.principal = principal


async def _token_principal(state: AppState, authorization: str) -> Principal:
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>', or sign in")
    async with state.pool.connection() as conn:
        principal = await auth.authenticate(conn, secret.strip())
    if principal is None:
        raise Unauthenticated("the token is unknown, expired or revoked")
    return principal


async def _session_principal(
    connection: ASGIConnection[Any, Any, Any, Any], state: AppState, session_id: str
) -> Principal:
    """A console session; a cookie rides along with any request, so writes must echo its CSRF token."""
    async with state.pool.connection() as conn:
        session = await users.session_principal(conn, session_id)
    if session is None:
        raise Unauthenticated("the session expired; sign in again")
    if connection.scope.get("method", "GET") not in SAFE_METHODS and not hmac.compare_digest(
        connection.headers.get("x-csrf-token", ""), session.csrf_token
    ):
        raise Forbidden("send the session's CSRF token in the X-CSRF-Token header")
    connection.state[CSRF_STATE] = session.csrf_token
    return Principal(session.user_id, session.brand_id, session.role, session.distributor_id, kind="user")


async def console_role(connection: ASGIConnection[Any, Any, Any, Any]) -> Role | None:
    """The role of the console session the request carries; None without one, or when it is over."""
    session_id = connection.cookies.get(CONSOLE_COOKIE)
    if not session_id:
        return None
    state: AppState = connection.app.state.onecode
    async with state.pool.connection() as conn:
        session = await users.session_principal(conn, session_id)
    return None if session is None else session.role


async def _check_rate(state: AppState, principal: Principal) -> None:
    limit = state.settings.admin_rate_per_minute
    window = int(time.time() // 60)
    key = f"{state.settings.redis_prefix}rl:admin:{principal.token_id}:{window}"
    async with state.redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
    if int(count) > limit:
        raise RateLimited(
            f"more than {limit} admin requests a minute for this token", retry_after=60 - time.time() % 60
        )


def principal_from(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state.principal
    return principal


def brand_of(principal: Principal) -> uuid.UUID:
    """The tenant of a brand-scoped request; platform admins must name a brand in the path instead."""
    if principal.brand_id is None:
        raise Forbidden("this route acts on the caller's brand; use a brand token")
    return principal.brand_id
