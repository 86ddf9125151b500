"""msgspec Structs for products, keys, batches and aggregations, and the inputs that create them."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Any, Literal

import msgspec

MAX_BATCH_QUANTITY = 100_000_000

Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Url = Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=2048)]
# Consumer-facing facts and free attributes: flat JSON objects of scalars, kept small.
Scalar = str | int | float | bool | None
Facts = Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Scalar], msgspec.Meta(max_length=50)]


class Product(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    gtin: str | None
    name: str
    sku: str | None
    image_url: str | None
    attributes: dict[str, Any]
    facts: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


class ProductIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    gtin: Annotated[str, msgspec.Meta(max_length=14)] | None = None
    sku: Text64 | None = None
    image_url: Url | None = None
    attributes: Facts = msgspec.field(default_factory=dict)
    facts: Facts = msgspec.field(default_factory=dict)


class ProductPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; the GTIN is fixed once codes may have been printed with it."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    sku: Text64 | msgspec.UnsetType | None = msgspec.UNSET
    image_url: Url | msgspec.UnsetType | None = msgspec.UNSET
    attributes: Facts | msgspec.UnsetType = msgspec.UNSET
    facts: Facts | msgspec.UnsetType = msgspec.UNSET


class BrandKey(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    key_id: int
    sealed_mac_key: bytes
    ed25519_public: bytes
    sealed_ed25519: bytes
    next_index: int
    created_at: dt.datetime


class KeyInfo(msgspec.Struct, frozen=True):
    """What the API shows of a key: never the key material."""

    key_id: int
    created_at: dt.datetime
    codes_issued: int
    current: bool


BatchActivation = Literal["on_shipment", "on_issue"]


class BatchStatus(enum.StrEnum):
    ISSUED = "issued"
    EXPORTED = "exported"
    VOIDED = "voided"


class Batch(msgspec.Struct, frozen=True):
    id: uuid.UUID
    seq: int
    brand_id: uuid.UUID
    product_id: uuid.UUID
    key_id: int
    start_index: int
    quantity: int
    lot: str | None
    production_date: dt.date | None
    line: str | None
    signed: bool
    activation: BatchActivation
    status: BatchStatus
    created_at: dt.datetime
    voided_at: dt.datetime | None


class BatchIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    product_id: uuid.UUID
    quantity: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH_QUANTITY)]
    lot: Text64 | None = None
    production_date: dt.date | None = None
    line: Text64 | None = None
    # Key slot to issue under; the newest key when omitted.
    key_id: Annotated[int, msgspec.Meta(ge=0, le=15)] | None = None
    # Append an Ed25519 signature (GS1 AI 8030) so anyone with the public key can verify offline.
    signed: bool = False
    # `on_shipment`: codes are inert until a shipment activates them (a scan before is `not_activated`,
    # the sign of a leaked print file); `on_issue`: live at once, for brands without logistics data.
    activation: BatchActivation = "on_shipment"


class AggregationLevel(enum.StrEnum):
    CASE = "case"
    PALLET = "pallet"


class Aggregation(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    level: AggregationLevel
    sscc: str
    parent_id: uuid.UUID | None
    created_at: dt.datetime


class ItemRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Items `start`..`stop`-1 by position within a batch (0 is the batch's first code)."""

    batch_id: uuid.UUID
    start: Annotated[int, msgspec.Meta(ge=0)]
    stop: Annotated[int, msgspec.Meta(ge=1)]


class AggregationIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A packing station's report: one case (items) or pallet (cases)."""

    level: AggregationLevel
    sscc: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")]
    items: Annotated[list[ItemRange], msgspec.Meta(max_length=10_000)] = msgspec.field(default_factory=list)
    # Serials of items packed one by one (explicit lists), resolved to positions by verification.
    serials: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=512)]], msgspec.Meta(max_length=10_000)
    ] = msgspec.field(default_factory=list)
    children_sscc: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=r"^[0-9]{18}$")]], msgspec.Meta(max_length=1000)
    ] = msgspec.field(default_factory=list)


class RegularPackingIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pack a batch's positions [start, stop) (the whole batch by default) N items per case, and
    optionally M cases per pallet, with generated SSCCs."""

    batch_id: uuid.UUID
    items_per_case: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    cases_per_pallet: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    gs1_company_prefix: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6,12}$")]
    extension_digit: Annotated[int, msgspec.Meta(ge=0, le=9)] = 0
    start: Annotated[int, msgspec.Meta(ge=0)] = 0
    stop: Annotated[int, msgspec.Meta(ge=1)] | None = None


class AggregationView(msgspec.Struct, frozen=True):
    aggregation: Aggregation
    # The case/pallet label: a GS1 Digital Link URI with AI 00 (SSCC).
    url: str
    items: list[ItemRange]
    children: list[Aggregation]
    parents: list[Aggregation]
