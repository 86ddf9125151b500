"""A worker's registry copy loads every change, also one numbered before a change that committed first."""

from __future__ import annotations

from typing import Any

import psycopg

from codegen.changes import MAX_MISSING, PATIENCE_S, ChangeCursor
from codegen.registry import CodeRegistry
from service.settings import Settings
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch


class TestChangeCursor:
    def test_skipped_numbers_are_asked_for_until_they_show(self) -> None:
        cursor = ChangeCursor()
        cursor.saw([1, 2, 5], now=0.0)
        assert (cursor.newest, sorted(cursor.missing)) == (5, [3, 4])
        assert cursor.params() == {"since": 5, "missing": [3, 4]}
        cursor.saw([4, 7], now=1.0)
        assert (cursor.newest, sorted(cursor.missing)) == (7, [3, 6])
        cursor.saw([3, 6], now=2.0)
        assert not cursor.waiting

    def test_a_number_that_never_shows_is_given_up_after_a_while(self) -> None:
        cursor = ChangeCursor()
        cursor.saw([1, 3], now=0.0)
        cursor.saw([], now=PATIENCE_S - 1)
        assert cursor.waiting
        cursor.saw([], now=PATIENCE_S + 1)
        assert not cursor.waiting and cursor.newest == 3

    def test_a_huge_jump_keeps_the_newest_skipped_numbers_only(self) -> None:
        cursor = ChangeCursor()
        cursor.saw([1, 1_000_000], now=0.0)
        assert len(cursor.missing) == MAX_MISSING
        assert max(cursor.missing) == 999_999


async def test_a_change_committed_after_a_later_numbered_one_is_still_loaded(
    db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
) -> None:
    issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=2)
    registry = CodeRegistry(settings.all_master_keys)
    await registry.refresh(db)
    assert registry.verify(issued.urls[0]).facts is not None
    async with await psycopg.AsyncConnection.connect(settings.database_url or "") as slow:
        # The slow transaction takes its change number first and commits last.
        await slow.execute("UPDATE products SET name = 'Renamed Lager' WHERE id = %s", (issued.product.id,))
        await db.execute("UPDATE batches SET lot = 'L-LATER' WHERE id = %s", (issued.batch.id,))
        await registry.refresh(db)
        facts = registry.verify(issued.urls[0]).facts
        assert facts is not None and (facts.lot, facts.product_name) == ("L-LATER", issued.product.name)
        await slow.commit()
    assert await registry.changed(db)
    await registry.refresh(db)
    facts = registry.verify(issued.urls[0]).facts
    assert facts is not None and facts.product_name == "Renamed Lager"
