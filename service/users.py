"""Console user accounts: people with the API's roles, invited by a brand admin, signing in with a password
(argon2id) and an optional TOTP second factor, holding a session cookie.

Sign-in failures are counted per account: five in a row lock it for 15 minutes (and the route limits
attempts per address and per network in Redis). A failed attempt is answered only after its count is
committed, so the caller can never roll a failure back. Unknown addresses cost the same password check
as known ones and get the same answer: the form does not tell who has an account.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import argon2
import msgspec
import pyotp
import segno

from codegen import keys
from service import ids
from service.brands import lock_definitions
from service.db import fetch_all, fetch_one
from service.errors import Conflict, InvalidField, LimitReached, NotFound
from service.models import Role
from service.queries import load_queries

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg import AsyncConnection

QUERIES = load_queries("service.sql", "users.sql")
HASHER = argon2.PasswordHasher()  # argon2id with the library's (RFC 9106) defaults
# Checked against when the address is unknown, so that both answers take as long (made on first use).
_dummy_hash: str | None = None
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)
SESSION_IDLE = dt.timedelta(hours=12)
INVITATION_TTL = dt.timedelta(days=7)
# Accounts (open invitations included) a brand holds: its people list comes whole.
MAX_ACCOUNTS = 2000
RESET_TTL = dt.timedelta(hours=1)
PASSWORD_MIN = 10
TOTP_ISSUER = "OneCode"

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=128)]
TotpCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
UserRole = Literal[
    "brand_admin",
    "marketer",
    "operations",
    "customer_service",
    "finance",
    "distributor",
    "auditor",
    "point_of_sale",
]


class InvitationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Email
    role: UserRole
    distributor_id: uuid.UUID | None = None


class Invitation(msgspec.Struct, frozen=True):
    email: str
    role: UserRole
    distributor_id: uuid.UUID | None
    created_at: dt.datetime
    expires_at: dt.datetime
    # Names it in the list of open invitations and to revoke it.
    id: uuid.UUID


class PendingInvitation(msgspec.Struct, frozen=True):
    """An invitation still open: not accepted, expired, replaced by a newer one or revoked."""

    id: uuid.UUID
    email: str
    role: UserRole
    distributor_id: uuid.UUID | None
    # Who sent it: a console user's email, or an API token's name.
    invited_by: str
    created_at: dt.datetime
    expires_at: dt.datetime


class AcceptIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: Secret
    password: Password


class LoginIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    totp_code: TotpCode | None = None


class ResetIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Email


class ResetConfirmIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: Secret
    password: Password


class TotpConfirmIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: TotpCode


class User(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    email: str
    role: UserRole
    distributor_id: uuid.UUID | None
    totp_enabled_at: dt.datetime | None
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    # A disabled account cannot sign in and its sessions are gone; the brand admin may enable it again.
    disabled_at: dt.datetime | None = None


class TotpSetup(msgspec.Struct, frozen=True):
    secret: str
    # For the authenticator app's QR code.
    otpauth_uri: str
    # That QR code as an SVG data URI, for a page to show without any QR library of its own.
    qr_svg: str = ""


class SessionPrincipal(msgspec.Struct, frozen=True):
    user_id: uuid.UUID
    brand_id: uuid.UUID
    role: Role
    distributor_id: uuid.UUID | None
    csrf_token: str


class LoginOutcome(msgspec.Struct, frozen=True):
    """What a sign-in attempt came to; the route commits it first, then answers."""

    result: Literal["signed_in", "failed", "locked", "totp_required"]
    # The account tried, when the address has one (for the audit log; never in the answer).
    account_id: uuid.UUID | None = None
    brand_id: uuid.UUID | None = None
    user: User | None = None
    session_id: str | None = None
    csrf_token: str | None = None


class _LoginRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    email: str
    role: UserRole
    distributor_id: uuid.UUID | None
    password_hash: str
    totp_secret_sealed: bytes | None
    totp_enabled_at: dt.datetime | None
    failed_logins: int
    locked_until: dt.datetime | None
    disabled_at: dt.datetime | None


class _Lock(msgspec.Struct, frozen=True):
    failed_logins: int
    locked_until: dt.datetime | None


class _Taken(msgspec.Struct, frozen=True):
    taken: bool


class _Taking(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    email: str
    role: UserRole
    distributor_id: uuid.UUID | None


class _UserId(msgspec.Struct, frozen=True):
    user_id: uuid.UUID


class _Sealed(msgspec.Struct, frozen=True):
    totp_secret_sealed: bytes | None


class Notifier(Protocol):
    """Sends staff email (invitations, password resets). Production adapters wrap a mail provider."""

    async def send_email(
        self, conn: AsyncConnection[Any], *, recipient: str, subject: str, body: str
    ) -> None: ...


class DevelopmentNotifier:
    """Records messages in `notification_outbox` instead of sending them."""

    async def send_email(
        self, conn: AsyncConnection[Any], *, recipient: str, subject: str, body: str
    ) -> None:
        await conn.execute(QUERIES["notify"], {"recipient": recipient, "subject": subject, "body": body})


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in email):
        raise InvalidField("email", "not an email address")
    return email


def check_password(password: str, email: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise InvalidField("password", f"at least {PASSWORD_MIN} characters")
    if len(set(password)) < 4:  # noqa: PLR2004
        raise InvalidField("password", "too easy to guess: use at least 4 different characters")
    name = email.partition("@")[0]
    if name in password.lower():
        raise InvalidField("password", f"too easy to guess: it contains your address's name ({name})")


async def invite(
    conn: AsyncConnection[Any],
    notifier: Notifier,
    brand_id: uuid.UUID,
    data: InvitationIn,
    *,
    actor: str,
    console_url: str,
    now: dt.datetime,
) -> Invitation:
    email = normalize_email(data.email)
    if (data.role == "distributor") != (data.distributor_id is not None):
        raise InvalidField("distributor_id", "give a distributor for the distributor role, and only then")
    if data.distributor_id is not None:
        cur = await conn.execute(
            QUERIES["distributor_of_brand"], {"distributor_id": data.distributor_id, "brand_id": brand_id}
        )
        if await cur.fetchone() is None:
            raise InvalidField("distributor_id", "no such distributor")
    await lock_definitions(conn, brand_id)  # two invitations at the cap cannot both pass the count
    cur = await conn.execute(QUERIES["count_accounts"], {"brand_id": brand_id})
    if (await cur.fetchone() or (0,))[0] >= MAX_ACCOUNTS:
        raise LimitReached("console accounts (open invitations included)", MAX_ACCOUNTS)
    taken = await fetch_one(conn, QUERIES["email_taken"], {"email": email}, _Taken)
    if taken is not None and taken.taken:
        raise Conflict("this address already has an account", field="email")
    token = secrets.token_urlsafe(32)
    invitation = await fetch_one(
        conn,
        QUERIES["invite"],
        {
            "id": ids.uuid7(),
            "token_hash": hash_token(token),
            "brand_id": brand_id,
            "email": email,
            "role": data.role,
            "distributor_id": data.distributor_id,
            "actor": actor,
            "expires_at": now + INVITATION_TTL,
        },
        Invitation,
    )
    assert invitation is not None
    await notifier.send_email(
        conn,
        recipient=email,
        subject="You are invited to OneCode",
        body=f"Set your password within 7 days: {console_url}/console/invitations/{token}",
    )
    return invitation


async def pending_invitations(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[PendingInvitation]:
    """The brand's open invitations, newest first."""
    return await fetch_all(
        conn,
        QUERIES["pending_invitations"],
        {"brand_id": brand_id, "after": after, "limit": limit},
        PendingInvitation,
    )


async def revoke_invitation(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, invitation_id: uuid.UUID
) -> PendingInvitation:
    """Withdraw an open invitation (the wrong address, a change of mind): its link stops working at once,
    refused as an expired one is. Another brand's, an unknown or a closed invitation is not found; an
    accepted one is a conflict (the account exists: disable it instead)."""
    params = {"brand_id": brand_id, "id": invitation_id}
    revoked = await fetch_one(conn, QUERIES["revoke_invitation"], params, PendingInvitation)
    if revoked is not None:
        return revoked
    accepted = await fetch_one(conn, QUERIES["invitation_accepted"], params, _Taken)
    if accepted is not None and accepted.taken:
        raise Conflict("the invitation was already accepted: disable the account instead")
    raise NotFound("invitation", invitation_id)


async def accept(conn: AsyncConnection[Any], data: AcceptIn) -> User:
    taking = await fetch_one(
        conn, QUERIES["take_invitation"], {"token_hash": hash_token(data.token)}, _Taking
    )
    if taking is None:
        raise InvalidField("token", "the invitation is unknown, used or expired")
    check_password(data.password, taking.email)
    user = await fetch_one(
        conn,
        QUERIES["create_user"],
        {
            "brand_id": taking.brand_id,
            "email": taking.email,
            "role": taking.role,
            "distributor_id": taking.distributor_id,
            "password_hash": await _hash(data.password),
        },
        User,
    )
    if user is None:
        raise Conflict("this address already has an account", field="email")
    return user


async def login(
    conn: AsyncConnection[Any], master_keys: Sequence[bytes], data: LoginIn, *, now: dt.datetime
) -> LoginOutcome:
    email = normalize_email(data.email)
    row = await fetch_one(conn, QUERIES["user_for_login"], {"email": email}, _LoginRow)
    if row is None or row.disabled_at is not None:
        await _verify(await _dummy(), data.password)
        return LoginOutcome("failed")
    # The password is checked even on a locked account, so that every attempt costs the same; the audit
    # tells a right one ("locked") from a wrong one, the answer never does: a lock that answered the
    # right password differently would confirm each guess while it stopped none.
    right = await _verify(row.password_hash, data.password)
    if row.locked_until is not None and row.locked_until > now:
        return LoginOutcome("locked" if right else "failed", row.id, row.brand_id)
    if right and row.totp_enabled_at is not None:
        if data.totp_code is None:
            return LoginOutcome("totp_required", row.id, row.brand_id)
        assert row.totp_secret_sealed is not None
        right = await _take_totp_code(conn, master_keys, row.id, row.totp_secret_sealed, data.totp_code, now)
    if not right:
        return await _failed(conn, row, now)
    rehash = await _hash(data.password) if HASHER.check_needs_rehash(row.password_hash) else None
    await conn.execute(QUERIES["login_succeeded"], {"user_id": row.id, "rehash": rehash})
    session_id, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await conn.execute(
        QUERIES["create_session"],
        {
            "id_hash": hash_token(session_id),
            "user_id": row.id,
            "csrf_token": csrf_token,
            "expires_at": now + SESSION_IDLE,
        },
    )
    user = await get_user(conn, row.id)
    return LoginOutcome(
        "signed_in", row.id, row.brand_id, user=user, session_id=session_id, csrf_token=csrf_token
    )


async def session_principal(conn: AsyncConnection[Any], session_id: str) -> SessionPrincipal | None:
    if not 16 <= len(session_id) <= 128:  # noqa: PLR2004
        return None
    return await fetch_one(
        conn,
        QUERIES["session_principal"],
        {"id_hash": hash_token(session_id), "idle": SESSION_IDLE},
        SessionPrincipal,
    )


async def logout(conn: AsyncConnection[Any], session_id: str) -> None:
    await conn.execute(QUERIES["delete_session"], {"id_hash": hash_token(session_id)})


async def get_user(conn: AsyncConnection[Any], user_id: uuid.UUID) -> User:
    user = await fetch_one(conn, QUERIES["get_user"], {"user_id": user_id}, User)
    assert user is not None
    return user


async def list_page(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, after: str | None, limit: int
) -> list[User]:
    """A page of the brand's accounts by email, after the email `after`."""
    return await fetch_all(
        conn, QUERIES["list_users"], {"brand_id": brand_id, "after": after, "limit": limit}, User
    )


async def list_users(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[User]:
    """Every account of the brand, for the console's people list: at most MAX_ACCOUNTS (`invite` refuses
    more); the API pages them (`list_page`)."""
    return await list_page(conn, brand_id, after=None, limit=MAX_ACCOUNTS)


async def set_disabled(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, user_id: uuid.UUID, *, disabled: bool, now: dt.datetime
) -> User:
    """Disable an account (someone left: its sessions end at once) or enable it again."""
    found = await fetch_one(
        conn,
        QUERIES["set_user_disabled"],
        {"brand_id": brand_id, "user_id": user_id, "disabled": disabled, "now": now},
        _UserId,
    )
    if found is None:
        raise NotFound("user", user_id)
    if disabled:
        await conn.execute(QUERIES["delete_user_sessions"], {"user_id": user_id})
    return await get_user(conn, user_id)


async def setup_totp(conn: AsyncConnection[Any], master_key: bytes, user: User) -> TotpSetup:
    """A new secret, pending until a code from it is confirmed; an enabled second factor is kept."""
    if user.totp_enabled_at is not None:
        raise Conflict("a second factor is already enabled")
    secret = pyotp.random_base32()
    sealed = keys.seal(master_key, secret.encode(), aad=totp_aad(user.id))
    await conn.execute(QUERIES["set_totp_secret"], {"user_id": user.id, "sealed": sealed})
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    qr = segno.make_qr(uri, error="m").svg_data_uri(scale=4, border=2)
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=qr)


async def confirm_totp(
    conn: AsyncConnection[Any], master_keys: Sequence[bytes], user: User, code: str, *, now: dt.datetime
) -> User:
    found = await fetch_one(conn, QUERIES["totp_secret"], {"user_id": user.id}, _Sealed)
    if found is None or found.totp_secret_sealed is None:
        raise InvalidField("code", "set up a second factor first")
    if not await _take_totp_code(conn, master_keys, user.id, found.totp_secret_sealed, code, now):
        raise InvalidField("code", "wrong code; check the authenticator's clock")
    await conn.execute(QUERIES["enable_totp"], {"user_id": user.id})
    return await get_user(conn, user.id)


async def request_reset(
    conn: AsyncConnection[Any], notifier: Notifier, data: ResetIn, *, console_url: str, now: dt.datetime
) -> None:
    """Mail a reset link if the address has an account; the answer is the same either way."""
    email = normalize_email(data.email)
    token = secrets.token_urlsafe(32)
    found = await fetch_one(
        conn,
        QUERIES["create_reset"],
        {"token_hash": hash_token(token), "email": email, "expires_at": now + RESET_TTL},
        _UserId,
    )
    if found is not None:
        await notifier.send_email(
            conn,
            recipient=email,
            subject="Reset your OneCode password",
            body=f"Choose a new password within an hour: {console_url}/console/password-resets/{token}",
        )


async def confirm_reset(conn: AsyncConnection[Any], data: ResetConfirmIn) -> User:
    """Set the new password and end every session of the account."""
    found = await fetch_one(conn, QUERIES["take_reset"], {"token_hash": hash_token(data.token)}, _UserId)
    if found is None:
        raise InvalidField("token", "the reset link is unknown, used or expired")
    user = await get_user(conn, found.user_id)
    check_password(data.password, user.email)
    await conn.execute(
        QUERIES["set_password"], {"user_id": user.id, "password_hash": HASHER.hash(data.password)}
    )
    await conn.execute(QUERIES["delete_user_sessions"], {"user_id": user.id})
    return user


async def _failed(conn: AsyncConnection[Any], row: _LoginRow, now: dt.datetime) -> LoginOutcome:
    lock = await fetch_one(
        conn,
        QUERIES["login_failed"],
        {"user_id": row.id, "max_failures": MAX_FAILURES, "locked_until": now + LOCKOUT},
        _Lock,
    )
    assert lock is not None
    # The lock is not announced: to a guesser, the fifth failure reads like the first.
    return LoginOutcome("failed", row.id, row.brand_id)


async def _take_totp_code(
    conn: AsyncConnection[Any],
    master_keys: Sequence[bytes],
    user_id: uuid.UUID,
    sealed_secret: bytes,
    code: str,
    now: dt.datetime,
) -> bool:
    """Whether `code` is the user's for now (or the step before or after: phone clocks drift), and its
    step was never used: each code signs in once."""
    totp = pyotp.TOTP(keys.unseal(master_keys, sealed_secret, aad=totp_aad(user_id)).decode())
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            params = {"user_id": user_id, "step": step}
            return await fetch_one(conn, QUERIES["use_totp_step"], params, _UserId) is not None
    return False


async def _hash(password: str) -> str:
    # Deliberately slow (tens of milliseconds): off the event loop that serves scans.
    return await asyncio.to_thread(HASHER.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(HASHER.verify, password_hash, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


async def _dummy() -> str:
    global _dummy_hash  # noqa: PLW0603 - made once, on the first sign-in of an unknown address
    if _dummy_hash is None:
        _dummy_hash = await _hash("not a password of anyone")
    return _dummy_hash


def totp_aad(user_id: uuid.UUID) -> bytes:
    return f"totp:{user_id}".encode()
