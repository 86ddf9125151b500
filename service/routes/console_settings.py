"""The console's account pages: accepting an invitation, choosing a new password, one's own account (the
second factor), and the brand's settings (profile, keys, webhooks, people, API tokens).

Every write is a call to the JSON API from the page, which checks roles and audits as it does for tokens.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from antifraud import shipments
from campaigns.members import webhooks
from codegen import keyring
from service import auth, brands, users
from service.guards import ANY_BRAND_ROLE, brand_of, principal_from, roles
from service.models import Role
from service.routes.console_common import render, texts, who
from service.settings import Settings

SETTINGS_ROLES = (Role.BRAND_ADMIN, Role.AUDITOR)
LISTED = 200
# A secret in a path segment: an invitation or reset link's token.
Token = Annotated[str, Parameter(min_length=16, max_length=200)]


@get("/console/invitations/{token:str}", include_in_schema=False)
async def invitation_page(request: Request[Any, Any, Any], token: Token) -> Response[str]:
    """The invitation link's page: choose a password, then sign in (the API checks the link)."""
    return render(
        request,
        "console_password.html",
        title=texts(request)["accept_invitation"],
        token=token,
        kind="invitation",
    )


@get("/console/password-resets/{token:str}", include_in_schema=False)
async def reset_page(request: Request[Any, Any, Any], token: Token) -> Response[str]:
    return render(
        request, "console_password.html", title=texts(request)["new_password"], token=token, kind="reset"
    )


@get("/console/account", opt=roles(*ANY_BRAND_ROLE), include_in_schema=False)
async def account_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """One's own account: who and which role, the second factor (set up with a QR code), sign out."""
    principal = principal_from(request)
    return render(
        request,
        "console_account.html",
        title=texts(request)["account"],
        user=await who(db, principal),
        session=principal.kind == "user",
    )


@get("/console/settings", opt=roles(*SETTINGS_ROLES), include_in_schema=False)
async def settings_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], settings: Settings
) -> Response[str]:
    """The brand: profile and scan domain, code keys (rotate), webhooks, people (invite, revoke an open
    invitation, disable), tokens."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    distributors = await shipments.list_distributors(db, brand_id, after=None, limit=LISTED)
    return render(
        request,
        "console_settings.html",
        title=texts(request)["settings_nav"],
        user=await who(db, principal),
        brand=await brands.get_brand(db, brand_id),
        scan_domain=settings.scan_domain,
        keys=keyring.key_infos(await keyring.list_keys(db, brand_id)),
        # Webhook URLs may carry a receiver's credentials: brand admins only, as on the API.
        webhooks=await webhooks.list_webhooks(db, brand_id) if principal.role is Role.BRAND_ADMIN else None,
        people=await users.list_users(db, brand_id),
        invitations=await users.pending_invitations(db, brand_id, after=None, limit=LISTED),
        distributors=distributors,
        distributor_names={d.id: d.name for d in distributors},
        tokens=await auth.list_tokens(db, brand_id=brand_id, after=None, limit=LISTED),
        roles=[r.value for r in sorted(ANY_BRAND_ROLE, key=lambda r: r.value)],
        may_change=principal.role is Role.BRAND_ADMIN,
        me=principal.token_id,
    )


PUBLIC_PAGES = [invitation_page, reset_page]
PAGES = [account_page, settings_page]
