"""API tokens: random secrets shown once, stored as SHA-256 hashes, scoped to a brand and a role."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING, Any

import psycopg.errors

from service import audit
from service.db import fetch_all, fetch_one
from service.errors import Forbidden, InvalidField, NotFound
from service.models import ApiToken, IssuedToken, Principal, Role, TokenIn
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("service.sql", "foundation.sql")
TOKEN_PREFIX = "oc_"  # noqa: S105 - a public prefix that marks OneCode tokens, not a secret

# Roles a brand admin may hand out; platform_admin tokens only come from the CLI.
_BRAND_ROLES = frozenset(Role) - {Role.PLATFORM_ADMIN}


def hash_secret(secret: str) -> bytes:
    # The secret has 256 bits of entropy, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).digest()


async def authenticate(conn: AsyncConnection[Any], secret: str) -> Principal | None:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:  # noqa: PLR2004
        return None
    return await fetch_one(
        conn, QUERIES["authenticate_token"], {"token_hash": hash_secret(secret)}, Principal
    )


async def create_token(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID | None,
    data: TokenIn,
    default_ttl_days: int,
) -> IssuedToken:
    """Create a token for `brand_id` (None only for platform_admin) and audit it."""
    if (data.role is Role.PLATFORM_ADMIN) != (brand_id is None):
        raise InvalidField("role", "platform_admin tokens have no brand; every other role needs one")
    if (data.role is Role.DISTRIBUTOR) != (data.distributor_id is not None):
        raise InvalidField(
            "distributor_id", "distributor_id is required for, and only for, distributor tokens"
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=data.ttl_days or default_ttl_days)
    try:
        token = await fetch_one(
            conn,
            QUERIES["insert_token"],
            {
                "brand_id": brand_id,
                "role": data.role.value,
                "distributor_id": data.distributor_id,
                "name": data.name,
                "token_hash": hash_secret(secret),
                "expires_at": expires_at,
            },
            ApiToken,
        )
    except psycopg.errors.ForeignKeyViolation as exc:
        if exc.diag.constraint_name == "api_tokens_distributor_fkey":
            raise NotFound("distributor", data.distributor_id) from None
        raise NotFound("brand", brand_id) from None
    assert token is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="token.create",
        object_type="api_token",
        object_id=token.id,
        after=token,
    )
    return IssuedToken(token=token, secret=secret)


def check_grantable(principal: Principal, role: Role) -> None:
    """A brand admin hands out brand roles; platform admins anything."""
    if principal.role is Role.PLATFORM_ADMIN:
        return
    if role not in _BRAND_ROLES:
        raise Forbidden(f"a {principal.role} cannot create {role} tokens")


async def list_tokens(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[ApiToken]:
    return await fetch_all(
        conn, QUERIES["list_tokens"], {"brand_id": brand_id, "after": after, "limit": limit}, ApiToken
    )


async def revoke_token(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID | None, token_id: uuid.UUID
) -> ApiToken:
    before = await fetch_one(
        conn, QUERIES["get_token"], {"token_id": token_id, "brand_id": brand_id}, ApiToken
    )
    if before is None:
        raise NotFound("token", token_id)
    after = await fetch_one(
        conn, QUERIES["revoke_token"], {"token_id": token_id, "brand_id": brand_id}, ApiToken
    )
    assert after is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="token.revoke",
        object_type="api_token",
        object_id=token_id,
        before=before,
        after=after,
    )
    return after
