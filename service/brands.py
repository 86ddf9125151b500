"""Brands: the tenants. Every other object belongs to exactly one brand."""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

import psycopg.errors

from service import audit
from service.db import fetch_all, fetch_one
from service.errors import Conflict, NotFound
from service.models import Brand, BrandIn
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("service.sql", "foundation.sql")
_SHORT_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _new_short_code() -> str:
    # 5 base32 characters: 33 million brands before collisions get likely; retried on collision anyway.
    return "".join(secrets.choice(_SHORT_CODE_ALPHABET) for _ in range(5))


async def create_brand(conn: AsyncConnection[Any], *, actor: str, data: BrandIn) -> Brand:
    if await fetch_one(conn, QUERIES["get_brand_by_slug"], {"slug": data.slug}, Brand) is not None:
        raise Conflict(f"brand slug {data.slug!r} is taken", field="slug")
    for _attempt in range(5):
        try:
            async with conn.transaction():
                brand = await fetch_one(
                    conn,
                    QUERIES["insert_brand"],
                    {
                        "slug": data.slug,
                        "name": data.name,
                        "short_code": _new_short_code(),
                        "is_loadtest": data.is_loadtest,
                    },
                    Brand,
                )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "brands_slug_key":
                raise Conflict(f"brand slug {data.slug!r} is taken", field="slug") from None
            continue  # short_code collision: draw again
        assert brand is not None
        await audit.record(
            conn,
            actor=actor,
            brand_id=brand.id,
            action="brand.create",
            object_type="brand",
            object_id=brand.id,
            after=brand,
        )
        return brand
    raise Conflict("could not allocate a brand short code; retry")


async def get_brand(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> Brand:
    brand = await fetch_one(conn, QUERIES["get_brand"], {"brand_id": brand_id}, Brand)
    if brand is None:
        raise NotFound("brand", brand_id)
    return brand


async def get_brand_by_slug(conn: AsyncConnection[Any], slug: str) -> Brand | None:
    return await fetch_one(conn, QUERIES["get_brand_by_slug"], {"slug": slug}, Brand)


async def list_brands(
    conn: AsyncConnection[Any], *, only_brand_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[Brand]:
    return await fetch_all(
        conn,
        QUERIES["list_brands"],
        {"only_brand_id": only_brand_id, "after": after, "limit": limit},
        Brand,
    )


async def set_gs1_company_prefixes(
    conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, prefixes: list[str]
) -> Brand:
    """Record the brand's GS1 company prefixes: no other brand may then register a GTIN under them.

    A claim must not overlap another brand's (a GS1 company prefix belongs to one company), nor cover
    GTINs other brands already registered: that is for the platform to sort out with them first."""
    before = await get_brand(conn, brand_id)
    claimed = sorted(set(prefixes))
    await conn.execute(QUERIES["lock_gs1_company_prefixes"])
    cur = await conn.execute(QUERIES["gs1_prefix_overlaps"], {"brand_id": brand_id, "prefixes": claimed})
    overlapping = [theirs for (theirs,) in await cur.fetchall()]
    if overlapping:
        raise Conflict(f"another brand holds GS1 company prefixes {', '.join(overlapping)}", field="prefixes")
    cur = await conn.execute(QUERIES["foreign_products_under"], {"brand_id": brand_id, "prefixes": claimed})
    foreign = (await cur.fetchone() or (0,))[0]
    if foreign:
        raise Conflict(
            f"{foreign} products of other brands have GTINs under these prefixes", field="prefixes"
        )
    brand = await fetch_one(
        conn, QUERIES["set_gs1_company_prefixes"], {"brand_id": brand_id, "prefixes": claimed}, Brand
    )
    assert brand is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="brand.gs1_company_prefixes",
        object_type="brand",
        object_id=brand_id,
        before=before,
        after=brand,
    )
    return brand


async def lock_definitions(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> None:
    """Serialise, per brand, the writes that delete a tag, segment, product, tier or attribute and those
    that name one (see lock_brand_definitions); held until the transaction ends."""
    await conn.execute(QUERIES["lock_brand_definitions"], {"brand_id": brand_id})


async def rename_brand(conn: AsyncConnection[Any], *, actor: str, brand_id: uuid.UUID, name: str) -> Brand:
    before = await get_brand(conn, brand_id)
    brand = await fetch_one(conn, QUERIES["rename_brand"], {"brand_id": brand_id, "name": name}, Brand)
    assert brand is not None
    await audit.record(
        conn,
        actor=actor,
        brand_id=brand_id,
        action="brand.rename",
        object_type="brand",
        object_id=brand_id,
        before=before,
        after=brand,
    )
    return brand
