"""The points ledger under random operations (hypothesis state machine) and concurrent spending."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from campaigns import ledger
from campaigns.errors import InsufficientPoints
from tests.conftest import Tenant

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def new_member(conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID) -> ledger.Member:
    member_id = uuid.uuid4()
    await conn.execute("INSERT INTO members (id, brand_id) VALUES (%s, %s)", (member_id, brand_id))
    return ledger.Member(brand_id, member_id)


class LedgerMachine(RuleBasedStateMachine):
    """A model of lots beside the real ledger; every step must agree with it."""

    database_url: str
    brand_id: uuid.UUID

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.conn: psycopg.AsyncConnection[Any] = self.run(
            psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        )
        self.member = self.run(new_member(self.conn, self.brand_id))
        self.now = T0
        self.model: list[list[Any]] = []  # [expires_at, remaining] per lot, in creation order

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.conn.close())
        self.loop.close()

    def model_balance(self) -> int:
        return sum(remaining for expires_at, remaining in self.model if expires_at > self.now)

    @initialize()
    def start(self) -> None:
        self.now = T0

    @rule(amount=st.integers(1, 500), days=st.integers(1, 400))
    def earn(self, amount: int, days: int) -> None:
        expires = self.now + dt.timedelta(days=days)
        self.run(
            ledger.earn(
                self.conn, self.member, amount, reason="scan", source="test", now=self.now, expires_at=expires
            )
        )
        self.model.append([expires, amount])

    @rule(amount=st.integers(1, 800))
    def redeem(self, amount: int) -> None:
        if amount > self.model_balance():
            with pytest.raises(InsufficientPoints):
                self.run(self._in_transaction(ledger.spend, amount))
            return
        self.run(self._in_transaction(ledger.spend, amount))
        self._model_spend(amount)

    @rule(amount=st.integers(-300, 300).filter(bool))
    def adjust(self, amount: int) -> None:
        if amount < 0 and -amount > self.model_balance():
            with pytest.raises(InsufficientPoints):
                self.run(
                    ledger.adjust(self.conn, self.member, amount, reason="fix", actor="cs", now=self.now)
                )
            return
        self.run(ledger.adjust(self.conn, self.member, amount, reason="fix", actor="cs", now=self.now))
        if amount > 0:
            self.model.append([ledger.default_expiry(self.now), amount])
        else:
            self._model_spend(-amount)

    @rule(days=st.integers(1, 200))
    def time_passes_and_expiry_runs(self, days: int) -> None:
        self.now += dt.timedelta(days=days)
        self.run(ledger.expire(self.conn, now=self.now))
        for lot in self.model:
            if lot[0] <= self.now:
                lot[1] = 0

    async def _in_transaction(self, operation: Any, amount: int) -> None:
        async with self.conn.transaction():
            await operation(self.conn, self.member, amount, reason="redeem", source="pos", now=self.now)

    def _model_spend(self, amount: int) -> None:
        for lot in sorted(
            (lot for lot in self.model if lot[0] > self.now and lot[1] > 0), key=lambda x: x[0]
        ):
            take = min(amount, lot[1])
            lot[1] -= take
            amount -= take

    @invariant()
    def balance_is_the_sum_of_the_ledger_and_matches_the_model(self) -> None:
        cur = self.run(
            self.conn.execute(
                "SELECT (SELECT coalesce(sum(amount), 0) FROM points_ledger WHERE member_id = %(m)s),"
                " (SELECT coalesce(sum(remaining), 0) FROM points_lots WHERE member_id = %(m)s),"
                " (SELECT count(*) FROM points_lots WHERE member_id = %(m)s AND remaining < 0)",
                {"m": self.member.member_id},
            )
        )
        ledger_sum, lots_sum, negative = self.run(cur.fetchone())
        assert ledger_sum == lots_sum
        assert negative == 0
        assert self.run(ledger.balance(self.conn, self.member, now=self.now)).balance == self.model_balance()

    @invariant()
    def every_lot_matches_the_fifo_model(self) -> None:
        """The model spends the earliest-expiring lots first; each real lot must hold what the model says."""
        cur = self.run(
            self.conn.execute(
                "SELECT remaining FROM points_lots WHERE member_id = %s ORDER BY id", (self.member.member_id,)
            )
        )
        assert [row[0] for row in self.run(cur.fetchall())] == [lot[1] for lot in self.model]


def test_ledger_state_machine(database_url: str, tenant_a: Tenant) -> None:
    """Earn / redeem / expire / adjust in any order: ledger sum = lots = model, no negative lot, FIFO."""
    LedgerMachine.database_url = database_url
    LedgerMachine.brand_id = tenant_a.brand_id
    test = LedgerMachine.TestCase
    test.settings = settings(
        max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    test().runTest()


async def test_concurrent_spends_never_overspend(
    database_url: str, db: psycopg.AsyncConnection[Any], tenant_a: Tenant
) -> None:
    """20 concurrent redemptions of 10 points against a balance of 100: exactly 10 succeed."""
    member = await new_member(db, tenant_a.brand_id)
    await ledger.earn(db, member, 100, reason="scan", source="test", now=T0)

    async def spend_once() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            try:
                async with conn.transaction():
                    await ledger.spend(conn, member, 10, reason="redeem", source="pos", now=T0)
            except InsufficientPoints:
                return False
            return True

    results = await asyncio.gather(*(spend_once() for _ in range(20)))
    assert results.count(True) == 10
    assert (await ledger.balance(db, member, now=T0)).balance == 0
