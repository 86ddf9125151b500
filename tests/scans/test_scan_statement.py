"""The group commit's statement as PostgreSQL plans it: prepared once per writer connection, for good."""

from __future__ import annotations

from typing import Any

import psycopg

from antifraud.scanlog import QUERIES


async def test_members_are_read_by_key_even_in_a_generic_plan(db: psycopg.AsyncConnection[Any]) -> None:
    """psycopg prepares `record_scans` after a few batches and PostgreSQL may then keep one generic plan
    for the connection's life. A join with members planned while the table was small (a fresh
    deployment) hashed the whole table on every batch; lookups by primary key cost the same at any size.
    """
    await db.execute(
        "PREPARE record_scans_plan(json) AS " + QUERIES["record_scans"].replace("%(scans)s", "$1")
    )
    try:
        await db.execute("SET plan_cache_mode = force_generic_plan")
        cur = await db.execute("EXPLAIN EXECUTE record_scans_plan('[]')")
        plan = "\n".join(row[0] for row in await cur.fetchall())
    finally:
        await db.execute("RESET plan_cache_mode")
        await db.execute("DEALLOCATE record_scans_plan")
    assert "Seq Scan on members" not in plan, plan
    assert "members_pkey on members" in plan, plan
