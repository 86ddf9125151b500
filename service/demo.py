"""`onecode demo`: seed a demo brand into the configured database, idempotently, and say how to use it."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg

from service import auth, brands
from service.models import BrandIn, Role, TokenIn

if TYPE_CHECKING:
    import uuid

    from service.settings import Settings

DEMO_SLUG = "demo"
DEMO_ACTOR = "demo-seed"
_TOKEN_FILE = "demo-token"  # noqa: S105 - a file name


class DemoInfo(msgspec.Struct, frozen=True, kw_only=True):
    api: str
    brand_id: uuid.UUID
    token: str
    docs: str


def seed_demo(settings: Settings) -> DemoInfo:
    return asyncio.run(_seed(settings))


async def _seed(settings: Settings) -> DemoInfo:
    async with (
        await psycopg.AsyncConnection.connect(settings.database_url or "") as conn,
        conn.transaction(),
    ):
        brand = await brands.get_brand_by_slug(conn, DEMO_SLUG)
        if brand is None:
            brand = await brands.create_brand(
                conn, actor=DEMO_ACTOR, data=BrandIn(slug=DEMO_SLUG, name="Demo Brewery")
            )
        token = await _demo_token(conn, settings, brand.id)
    api = f"http://{settings.host}:{settings.port}"
    return DemoInfo(api=api, brand_id=brand.id, token=token, docs=f"{api}/schema/swagger")


async def _demo_token(conn: psycopg.AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID) -> str:
    """Reuse the token of an earlier run while it is valid for this brand, so re-runs add nothing."""
    token_file = settings.home / _TOKEN_FILE
    if token_file.exists():
        secret = token_file.read_text().strip()
        principal = await auth.authenticate(conn, secret)
        if principal is not None and principal.brand_id == brand_id:
            return secret
    issued = await auth.create_token(
        conn,
        actor=DEMO_ACTOR,
        brand_id=brand_id,
        data=TokenIn(role=Role.BRAND_ADMIN, name="demo admin"),
        default_ttl_days=settings.token_ttl_days,
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.secret)
    return issued.secret
