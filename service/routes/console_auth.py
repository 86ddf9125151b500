"""Console accounts over HTTP: sign-in and out, invitations, password resets, the TOTP second factor.

The session cookie is httpOnly and SameSite=Strict; every write made with it must also send the
session's CSRF token in `X-CSRF-Token` (the guard checks). Sign-in attempts are limited per address and
per network, and an account locks for 15 minutes after five failures in a row; every attempt is audited.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud.clients import client_ip, ip_prefix
from service import audit, users
from service.errors import (
    Conflict,
    Forbidden,
    LoginFailed,
    NotFound,
    RateLimited,
    TotpRequired,
)
from service.guards import ANY_BRAND_ROLE, CONSOLE_COOKIE, brand_of, principal_from, require_token, roles
from service.models import Page, Principal, Role
from service.routes.admin import Limit, page
from service.settings import Settings
from service.state import AppState

LOGIN_WINDOW_S = 15 * 60
LOGINS_PER_ADDRESS = 10
LOGINS_PER_NETWORK = 50
LOGIN_FAILED = "wrong email or password, or too many failed attempts: try again in 15 minutes"


class SignedIn(msgspec.Struct, frozen=True):
    user: users.User
    # Send it back in X-CSRF-Token with every write made with the session cookie.
    csrf_token: str


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state.onecode
    return state


async def _limit_attempts(request: Request[Any, Any, Any], email: str) -> list[str]:
    """Password guessing is slowed per address (an account) and per network (a guesser); returns the
    counters the attempt was counted in."""
    state = _state(request)
    # A network, not an address: a guesser rotating through its /24 (or /48) is still one guesser.
    network = ip_prefix(
        client_ip(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            trust_forwarded_for=state.settings.trust_forwarded_for,
        )
    )
    window = int(time.time() // LOGIN_WINDOW_S)
    prefix = f"{state.settings.redis_prefix}login:{window}"
    counters = [f"{prefix}:email:{users.hash_token(email).hex()[:32]}", f"{prefix}:net:{network}"]
    async with state.redis.pipeline(transaction=False) as pipe:
        for counter in counters:
            pipe.incr(counter)
            pipe.expire(counter, LOGIN_WINDOW_S)
        per_email, _, per_ip, _ = await pipe.execute()
    if int(per_email) > LOGINS_PER_ADDRESS or int(per_ip) > LOGINS_PER_NETWORK:
        raise RateLimited(
            "too many sign-in attempts; wait a few minutes",
            retry_after=LOGIN_WINDOW_S - time.time() % LOGIN_WINDOW_S,
        )
    return counters


async def _forgive_attempt(request: Request[Any, Any, Any], counters: list[str]) -> None:
    """A sign-in that succeeded guessed nothing: it does not count, or an office behind one address
    would be locked out by its own people signing in at nine."""
    async with _state(request).redis.pipeline(transaction=False) as pipe:
        for counter in counters:
            pipe.decr(counter)
            pipe.expire(counter, LOGIN_WINDOW_S)  # never a key without expiry (a flush in between)
        await pipe.execute()


def _session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> str:
    # Secure whenever the console is served over https (behind a TLS proxy the request itself is http).
    https = _state(request).settings.console_url.startswith("https://") or request.url.scheme == "https"
    secure = "; Secure" if https else ""
    return f"{CONSOLE_COOKIE}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=Strict{secure}"


@post("/console/login", status_code=200, tags=["console"])
async def login(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: users.LoginIn
) -> Response[SignedIn]:
    """Sign in with email and password (and the TOTP code once enabled); sets the session cookie."""
    email = users.normalize_email(data.email)
    counters = await _limit_attempts(request, email)
    settings = _state(request).settings
    # Committed before answering: a failed attempt must count even though the answer is an error.
    async with db.transaction():
        outcome = await users.login(db, settings.all_master_keys, data, now=dt.datetime.now(dt.UTC))
        await audit.record(
            db,
            actor=f"user:{outcome.account_id}" if outcome.account_id else f"login:{email}",
            brand_id=outcome.brand_id,
            action="console.login" if outcome.result == "signed_in" else "console.login_refused",
            object_type="console_user",
            object_id=outcome.account_id,
            after={"result": outcome.result, "email": email},
        )
    if outcome.result == "totp_required":
        raise TotpRequired("enter the code from your authenticator app")
    if outcome.result in {"failed", "locked"}:
        # One answer for an unknown address, a wrong password and a locked account (whatever password):
        # it neither says who has an account nor confirms a guess.
        raise LoginFailed(LOGIN_FAILED)
    assert outcome.user is not None
    assert outcome.session_id is not None
    assert outcome.csrf_token is not None
    await _forgive_attempt(request, counters)
    cookie = _session_cookie(request, outcome.session_id, int(users.SESSION_IDLE.total_seconds()))
    return Response(SignedIn(outcome.user, outcome.csrf_token), headers={"set-cookie": cookie})


def _user_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = principal_from(request)
    if principal.kind != "user":
        raise Forbidden("this needs a console session, not an API token")
    return principal


@post("/console/logout", status_code=204, opt=roles(*ANY_BRAND_ROLE), tags=["console"])
async def logout(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[None]:
    _user_principal(request)
    await users.logout(db, request.cookies.get(CONSOLE_COOKIE, ""))
    return Response(None, status_code=204, headers={"set-cookie": _session_cookie(request, "", 0)})


@get("/console/me", opt=roles(*ANY_BRAND_ROLE), tags=["console"])
async def me(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> users.User:
    return await users.get_user(db, _user_principal(request).token_id)


@post("/console/invitations/accept", status_code=201, tags=["console"])
async def accept_invitation(db: AsyncConnection[Any], data: users.AcceptIn) -> users.User:
    """Set the password of an invited account (the link's token, used once, within 7 days)."""
    user = await users.accept(db, data)
    await audit.record(
        db,
        actor=f"user:{user.id}",
        brand_id=user.brand_id,
        action="console.user_created",
        object_type="console_user",
        object_id=user.id,
        after={"email": user.email, "role": user.role},
    )
    return user


@post("/console/password-resets", status_code=202, tags=["console"])
async def request_reset(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: users.ResetIn
) -> None:
    """Mail a reset link; the answer is the same whether the address has an account or not."""
    await _limit_attempts(request, users.normalize_email(data.email))
    notifier = _state(request).notifier
    await users.request_reset(
        db, notifier, data, console_url=_state(request).settings.console_url, now=dt.datetime.now(dt.UTC)
    )


@post("/console/password-resets/confirm", status_code=200, tags=["console"])
async def confirm_reset(db: AsyncConnection[Any], data: users.ResetConfirmIn) -> users.User:
    """Choose a new password; every session of the account ends."""
    user = await users.confirm_reset(db, data)
    await audit.record(
        db,
        actor=f"user:{user.id}",
        brand_id=user.brand_id,
        action="console.password_reset",
        object_type="console_user",
        object_id=user.id,
    )
    return user


@post("/console/totp/setup", status_code=200, opt=roles(*ANY_BRAND_ROLE), tags=["console"])
async def setup_totp(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> users.TotpSetup:
    """A new second-factor secret (and its otpauth:// URI); active once a code from it is confirmed."""
    user = await users.get_user(db, _user_principal(request).token_id)
    return await users.setup_totp(db, _state(request).settings.master_key, user)


@post("/console/totp/confirm", status_code=200, opt=roles(*ANY_BRAND_ROLE), tags=["console"])
async def confirm_totp(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: users.TotpConfirmIn
) -> users.User:
    principal = _user_principal(request)
    user = await users.get_user(db, principal.token_id)
    enabled = await users.confirm_totp(
        db, _state(request).settings.all_master_keys, user, data.code, now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=enabled.brand_id,
        action="console.totp_enabled",
        object_type="console_user",
        object_id=enabled.id,
    )
    return enabled


@post("/v1/users/invitations", opt=roles(Role.BRAND_ADMIN), tags=["console"])
async def invite(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: users.InvitationIn
) -> users.Invitation:
    """Invite a person to the console with a role; the link goes out by the notification adapter."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    invitation = await users.invite(
        db,
        _state(request).notifier,
        brand_id,
        data,
        actor=principal.actor,
        console_url=_state(request).settings.console_url,
        now=dt.datetime.now(dt.UTC),
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="console.invite",
        object_type="console_invitation",
        object_id=invitation.email,
        after=invitation,
    )
    return invitation


@get("/v1/users/invitations", opt=roles(Role.BRAND_ADMIN, Role.AUDITOR), tags=["console"])
async def list_invitations(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    """The brand's open invitations (not accepted, expired, replaced or revoked), newest first, each with
    who sent it (a person's email or a token's name)."""
    limit = min(limit, settings.max_page_size)
    brand_id = brand_of(principal_from(request))
    items = await users.pending_invitations(db, brand_id, after=after, limit=limit + 1)
    return page(items, limit, lambda i: i.id)


@delete(
    "/v1/users/invitations/{invitation_id:uuid}",
    opt=roles(Role.BRAND_ADMIN),
    status_code=204,
    tags=["console"],
)
async def revoke_invitation(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], invitation_id: uuid.UUID
) -> None:
    """Revoke an open invitation: its link stops working at once (refused as an expired one); audited."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    revoked = await users.revoke_invitation(db, brand_id, invitation_id)
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="console.invitation_revoke",
        object_type="console_invitation",
        object_id=revoked.email,  # as console.invite names it
        before=revoked,
    )


@post("/v1/users/{user_action:str}", opt=roles(Role.BRAND_ADMIN), status_code=200, tags=["console"])
async def disable_or_enable_user(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], user_action: str
) -> users.User:
    """`POST /v1/users/{id}:disable` (sessions end at once, sign-in refused) or `:enable`; audited."""
    raw_id, _, action = user_action.partition(":")
    try:
        user_id = uuid.UUID(raw_id)
    except ValueError:
        raise NotFound("route", user_action) from None
    if action not in {"disable", "enable"}:
        raise NotFound("route", user_action)
    principal = principal_from(request)
    if principal.kind == "user" and principal.token_id == user_id:
        raise Conflict("you cannot disable or enable your own account")
    brand_id = brand_of(principal)
    user = await users.set_disabled(
        db, brand_id, user_id, disabled=action == "disable", now=dt.datetime.now(dt.UTC)
    )
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action=f"console.user_{action}",
        object_type="console_user",
        object_id=user_id,
        after={"email": user.email, "disabled_at": user.disabled_at},
    )
    return user


@get("/v1/users", opt=roles(Role.BRAND_ADMIN, Role.AUDITOR), tags=["console"])
async def list_users(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: Annotated[
        str | None, Parameter(max_length=254, description="the previous page's next_cursor")
    ] = None,
    limit: Limit = 50,
) -> Page:
    """The brand's console accounts by email (the cursor is the last one's email)."""
    limit = min(limit, settings.max_page_size)
    items = await users.list_page(db, brand_of(principal_from(request)), after=after, limit=limit + 1)
    return page(items, limit, lambda u: u.email)


def console_auth_router() -> Router:
    public = [login, accept_invitation, request_reset, confirm_reset]
    signed_in = [
        logout,
        me,
        setup_totp,
        confirm_totp,
        invite,
        list_invitations,
        revoke_invitation,
        list_users,
        disable_or_enable_user,
    ]
    return Router(
        "/",
        route_handlers=[
            Router("/", route_handlers=public),
            Router("/", route_handlers=signed_in, guards=[require_token]),
        ],
    )
