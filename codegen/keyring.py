"""Brand keys in the database: created, rotated and unsealed here; the key material never leaves sealed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from codegen import keys
from codegen.codeformat import CodeKey
from codegen.errors import ObjectNotFound, StateConflict
from codegen.models import BrandKey, KeyInfo
from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")
KEY_SLOTS = 16


def mac_aad(brand_id: uuid.UUID, key_id: int) -> bytes:
    # Binding the sealed blob to its brand and slot: a blob copied onto another row will not open.
    return f"onecode:mac:{brand_id}:{key_id}".encode()


def ed25519_aad(brand_id: uuid.UUID, key_id: int) -> bytes:
    return f"onecode:ed25519:{brand_id}:{key_id}".encode()


async def list_keys(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> list[BrandKey]:
    return await fetch_all(conn, QUERIES["list_keys"], {"brand_id": brand_id}, BrandKey)


def key_infos(found: list[BrandKey]) -> list[KeyInfo]:
    newest = found[-1].key_id if found else None
    return [
        KeyInfo(
            key_id=k.key_id, created_at=k.created_at, codes_issued=k.next_index, current=k.key_id == newest
        )
        for k in found
    ]


async def _add_key(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, key_id: int, master_key: bytes
) -> BrandKey:
    private_raw, public_raw = keys.new_ed25519_keypair()
    await conn.execute(
        QUERIES["insert_key"],
        {
            "brand_id": brand_id,
            "key_id": key_id,
            "sealed_mac_key": keys.seal(master_key, keys.new_mac_key(), aad=mac_aad(brand_id, key_id)),
            "ed25519_public": public_raw,
            "sealed_ed25519": keys.seal(master_key, private_raw, aad=ed25519_aad(brand_id, key_id)),
        },
    )
    found = await list_keys(conn, brand_id)
    return next(k for k in found if k.key_id == key_id)


async def current_key(conn: AsyncConnection[Any], brand_id: uuid.UUID, master_key: bytes) -> BrandKey:
    """The brand's newest key, creating the first one on first use."""
    await _lock_brand(conn, brand_id)
    found = await list_keys(conn, brand_id)
    if found:
        return found[-1]
    return await _add_key(conn, brand_id, 0, master_key)


async def rotate(conn: AsyncConnection[Any], brand_id: uuid.UUID, master_key: bytes) -> BrandKey:
    """Add a key in the next free slot; it becomes current. Older keys keep verifying their codes."""
    await _lock_brand(conn, brand_id)
    found = await list_keys(conn, brand_id)
    if len(found) >= KEY_SLOTS:
        raise StateConflict(f"all {KEY_SLOTS} key slots are used; codes carry a 4-bit key id", field="key_id")
    return await _add_key(conn, brand_id, len(found), master_key)


async def _lock_brand(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> None:
    cur = await conn.execute(QUERIES["lock_brand_keys"], {"brand_id": brand_id})
    if await cur.fetchone() is None:
        raise ObjectNotFound("brand", brand_id)


def code_key(key: BrandKey, master_keys: Sequence[bytes]) -> CodeKey:
    return CodeKey(
        key.key_id, keys.unseal(master_keys, key.sealed_mac_key, aad=mac_aad(key.brand_id, key.key_id))
    )


def signing_key(key: BrandKey, master_keys: Sequence[bytes]) -> bytes:
    return keys.unseal(master_keys, key.sealed_ed25519, aad=ed25519_aad(key.brand_id, key.key_id))


async def public_jwks(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> dict[str, list[dict[str, str]]]:
    """The brand's Ed25519 public keys as a JWK set, for verifying signed codes offline."""
    found = await list_keys(conn, brand_id)
    return {"keys": [keys.public_jwk(f"{brand_id}:{k.key_id}", k.ed25519_public) for k in found]}


async def get_key(conn: AsyncConnection[Any], brand_id: uuid.UUID, key_id: int) -> BrandKey:
    for key in await list_keys(conn, brand_id):
        if key.key_id == key_id:
            return key
    raise ObjectNotFound("key", key_id)
