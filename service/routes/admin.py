"""Admin API of the foundation: brands, API tokens and the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Router, get, patch, post, put
from litestar.params import Parameter
from psycopg import AsyncConnection

from service import audit, auth, brands
from service.errors import Forbidden
from service.guards import ANY_BRAND_ROLE, brand_of, principal_from, require_token, roles
from service.models import (
    ApiToken,
    AuditEntry,
    AuditVerification,
    Brand,
    BrandIn,
    BrandPatch,
    Gs1CompanyPrefixesIn,
    IssuedToken,
    Page,
    Role,
    TokenIn,
)
from service.settings import Settings

Limit = Annotated[int, Parameter(ge=1, le=1000, description="page size (capped by ONECODE_MAX_PAGE_SIZE)")]
# A `<time>,<id>` cursor (service.cursors) as a list's next_cursor or Link header gave it.
Cursor = Annotated[str | None, Parameter(max_length=100, description="the next_cursor of the previous page")]


def page(items: list[Any], limit: int, cursor_of: Any) -> Page:
    """Keyset page of `limit` items from a fetch of `limit + 1`: a next cursor only when there is more
    (a page that ends on the last item has none, so a client never asks for an empty page)."""
    if len(items) > limit:
        kept = items[:limit]
        return Page(items=kept, next_cursor=str(cursor_of(kept[-1])))
    return Page(items=items, next_cursor=None)


@post("/brands", opt=roles(Role.PLATFORM_ADMIN), tags=["brands"])
async def create_brand(request: Request[Any, Any, Any], db: AsyncConnection[Any], data: BrandIn) -> Brand:
    return await brands.create_brand(db, actor=principal_from(request).actor, data=data)


# A distributor is another company: the portal API is all it reads of the brand.
BRAND_READERS = (*(ANY_BRAND_ROLE - {Role.DISTRIBUTOR}), Role.PLATFORM_ADMIN)


@get("/brands", opt=roles(*BRAND_READERS), tags=["brands"])
async def list_brands(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    principal = principal_from(request)
    limit = min(limit, settings.max_page_size)
    items = await brands.list_brands(db, only_brand_id=principal.brand_id, after=after, limit=limit + 1)
    return page(items, limit, lambda b: b.id)


@get("/brands/{brand_id:uuid}", opt=roles(*BRAND_READERS), tags=["brands"])
async def get_brand(db: AsyncConnection[Any], brand_id: uuid.UUID) -> Brand:
    return await brands.get_brand(db, brand_id)


@patch("/brands/{brand_id:uuid}", opt=roles(Role.BRAND_ADMIN, Role.PLATFORM_ADMIN), tags=["brands"])
async def update_brand(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], brand_id: uuid.UUID, data: BrandPatch
) -> Brand:
    """Rename the brand (its display name; the slug and short code are fixed); audited."""
    return await brands.rename_brand(
        db, actor=principal_from(request).actor, brand_id=brand_id, name=data.name
    )


@put("/brands/{brand_id:uuid}/gs1-company-prefixes", opt=roles(Role.PLATFORM_ADMIN), tags=["brands"])
async def set_gs1_company_prefixes(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], brand_id: uuid.UUID, data: Gs1CompanyPrefixesIn
) -> Brand:
    """Record the GS1 company prefixes the brand has shown to be its own (replacing those recorded):
    from then on no other brand may register a product whose GTIN falls under one of them; audited."""
    return await brands.set_gs1_company_prefixes(
        db, actor=principal_from(request).actor, brand_id=brand_id, prefixes=data.prefixes
    )


@post("/tokens", opt=roles(Role.BRAND_ADMIN), tags=["tokens"])
async def create_token(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings, data: TokenIn
) -> IssuedToken:
    """Create a token for the caller's brand; the secret in the response is never shown again."""
    principal = principal_from(request)
    auth.check_grantable(principal, data.role)
    return await auth.create_token(
        db,
        actor=principal.actor,
        brand_id=brand_of(principal),
        data=data,
        default_ttl_days=settings.token_ttl_days,
    )


@post("/brands/{brand_id:uuid}/tokens", opt=roles(Role.PLATFORM_ADMIN), tags=["tokens"])
async def create_brand_token(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    brand_id: uuid.UUID,
    data: TokenIn,
) -> IssuedToken:
    """Onboard a brand over the API: a platform admin issues one of its tokens (its first brand_admin)."""
    if data.role is Role.PLATFORM_ADMIN:
        raise Forbidden("a brand's token cannot be a platform_admin token")
    await brands.get_brand(db, brand_id)  # 404 for a brand that does not exist
    return await auth.create_token(
        db,
        actor=principal_from(request).actor,
        brand_id=brand_id,
        data=data,
        default_ttl_days=settings.token_ttl_days,
    )


@get("/tokens", opt=roles(Role.BRAND_ADMIN, Role.AUDITOR), tags=["tokens"])
async def list_tokens(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: uuid.UUID | None = None,
    limit: Limit = 50,
) -> Page:
    limit = min(limit, settings.max_page_size)
    brand_id = brand_of(principal_from(request))
    items = await auth.list_tokens(db, brand_id=brand_id, after=after, limit=limit + 1)
    return page(items, limit, lambda t: t.id)


@post("/tokens/{token_id:uuid}/revoke", opt=roles(Role.BRAND_ADMIN), status_code=200, tags=["tokens"])
async def revoke_token(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], token_id: uuid.UUID
) -> ApiToken:
    principal = principal_from(request)
    return await auth.revoke_token(db, actor=principal.actor, brand_id=brand_of(principal), token_id=token_id)


@get("/audit", opt=roles(Role.BRAND_ADMIN, Role.AUDITOR, Role.PLATFORM_ADMIN), tags=["audit"])
async def list_audit(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    after: int | None = None,
    limit: Limit = 50,
    action: str | None = None,
    object_type: str | None = None,
) -> Page:
    """The caller's brand's entries (platform admins see all), oldest first."""
    limit = min(limit, settings.max_page_size)
    items: list[AuditEntry] = await audit.list_entries(
        db,
        brand_id=principal_from(request).brand_id,
        after=after,
        limit=limit + 1,
        action=action,
        object_type=object_type,
    )
    return page(items, limit, lambda e: e.id)


@get("/audit/verify", opt=roles(Role.AUDITOR, Role.PLATFORM_ADMIN), tags=["audit"])
async def verify_audit(db: AsyncConnection[Any]) -> AuditVerification:
    """Recompute the whole hash chain; `first_bad_id` names the first entry that was tampered with."""
    return await audit.verify_chain(db)


def admin_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            create_brand,
            list_brands,
            get_brand,
            update_brand,
            set_gs1_company_prefixes,
            create_token,
            create_brand_token,
            list_tokens,
            revoke_token,
            list_audit,
            verify_audit,
        ],
        guards=[require_token],
    )
