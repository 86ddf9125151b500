"""msgspec Structs for the foundation's objects (brands, tokens, audit entries) and their inputs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Any, Literal

import msgspec


class Role(enum.StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    BRAND_ADMIN = "brand_admin"
    MARKETER = "marketer"
    OPERATIONS = "operations"
    CUSTOMER_SERVICE = "customer_service"
    FINANCE = "finance"
    DISTRIBUTOR = "distributor"
    AUDITOR = "auditor"
    # A till: checks and redeems coupons, nothing else.
    POINT_OF_SALE = "point_of_sale"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: an API token or a console user (`token_id` is then the user's id), its tenant
    (None for platform admins), role and distributor scope."""

    token_id: uuid.UUID
    brand_id: uuid.UUID | None
    role: Role
    distributor_id: uuid.UUID | None = None
    kind: Literal["token", "user"] = "token"

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.token_id}"


class Brand(msgspec.Struct, frozen=True):
    id: uuid.UUID
    slug: str
    name: str
    short_code: str
    is_loadtest: bool
    # GS1 company prefixes a platform admin recorded as the brand's: GTINs under them are the brand's only.
    gs1_company_prefixes: list[str]
    created_at: dt.datetime


Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", max_length=63)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class BrandIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    is_loadtest: bool = False


class BrandPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a brand admin may change of the brand: its display name (slug and short code are fixed)."""

    name: Name


class Gs1CompanyPrefixesIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The brand's GS1 company prefixes (4-12 digits, as on its GS1 membership), replacing those recorded."""

    prefixes: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4,12}$")]], msgspec.Meta(max_length=50)
    ]


class ApiToken(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID | None
    role: Role
    distributor_id: uuid.UUID | None
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class TokenIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: Role
    name: Name
    ttl_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None
    distributor_id: uuid.UUID | None = None


class IssuedToken(msgspec.Struct, frozen=True):
    """A token as created: `secret` is shown once, here, and never again."""

    token: ApiToken
    secret: str


class AuditEntry(msgspec.Struct, frozen=True):
    id: int
    brand_id: uuid.UUID | None
    actor: str
    action: str
    object_type: str
    object_id: str | None
    before: Any
    after: Any
    at: dt.datetime
    hash: str


class AuditVerification(msgspec.Struct, frozen=True):
    intact: bool
    checked: int
    first_bad_id: int | None


class Page(msgspec.Struct, frozen=True):
    """A page of a keyset-paginated list; pass `next_cursor` as `after` for the next page."""

    items: list[Any]
    next_cursor: str | None
