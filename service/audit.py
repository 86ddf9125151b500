"""The append-only, hash-chained audit log that every admin write goes through."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.types.json import Jsonb

from service.db import fetch_all
from service.models import AuditEntry, AuditVerification
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("service.sql", "foundation.sql")


def _jsonable(value: Any) -> Any:
    # Structs, UUIDs and datetimes become plain JSON so the entry's hash is over stable text.
    return None if value is None else msgspec.to_builtins(value)


async def record(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    brand_id: uuid.UUID | None,
    action: str,
    object_type: str,
    object_id: object | None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one entry inside the caller's transaction; it commits or rolls back with the change."""
    await conn.execute(QUERIES["lock_audit_chain"])
    cur = await conn.execute(
        QUERIES["append_audit"],
        {
            "brand_id": brand_id,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": None if object_id is None else str(object_id),
            "before": None if before is None else Jsonb(_jsonable(before)),
            "after": None if after is None else Jsonb(_jsonable(after)),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def list_entries(
    conn: AsyncConnection[Any],
    *,
    brand_id: uuid.UUID | None,
    after: int | None,
    limit: int,
    action: str | None = None,
    object_type: str | None = None,
) -> list[AuditEntry]:
    return await fetch_all(
        conn,
        QUERIES["list_audit"],
        {
            "brand_id": brand_id,
            "after": after,
            "limit": limit,
            "action": action,
            "object_type": object_type,
        },
        AuditEntry,
    )


async def verify_chain(conn: AsyncConnection[Any]) -> AuditVerification:
    """Recompute every entry's hash and back-link; any edit of a past entry breaks the chain from there."""
    cur = await conn.execute(QUERIES["verify_audit_chain"])
    row = await cur.fetchone()
    assert row is not None
    checked, first_bad_id = row
    return AuditVerification(intact=first_bad_id is None, checked=checked, first_bad_id=first_bad_id)
