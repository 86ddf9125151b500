"""Following `registry_change_seq`: which changes a worker's copy has loaded, and which it still waits for.

A change takes its number when its row is written (a trigger calls nextval), but others see the row only
once its transaction commits. So a later-numbered change can commit, and be loaded, before an earlier
one: a follower that only asked for "numbers above the newest I loaded" would never load the earlier one
(a shipment activated by a slow transaction would stay unactivated in other workers until a restart).

A follower therefore keeps the numbers it skipped over as missing and asks for them again by number,
until they show up or for PATIENCE_S at most: a number also goes unseen for good when its transaction
rolled back, when its row was written again since (the row carries the later number), or when it
belongs to the other follower of the same sequence (the blocklist and the code registry share it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

PATIENCE_S = 60.0
# Bounds the memory and the query of a follower that skipped over a great many numbers at once (a
# bulk write it could not see yet); the newest ones are kept.
MAX_MISSING = 1_000


class ChangeCursor:
    def __init__(self) -> None:
        self.newest = 0
        # Skipped numbers and when they were first missed (monotonic seconds).
        self.missing: dict[int, float] = {}

    def params(self) -> dict[str, Any]:
        """The parameters of a follower's query: `change_seq > %(since)s OR change_seq = ANY(%(missing)s)`."""
        return {"since": self.newest, "missing": sorted(self.missing)}

    @property
    def waiting(self) -> bool:
        """True while some skipped numbers may still show up: worth asking again even if nothing is new."""
        return bool(self.missing)

    def saw(self, numbers: Iterable[int], now: float | None = None) -> None:
        """Record the change numbers just loaded (by this follower, or by the other one)."""
        now = time.monotonic() if now is None else now
        seen = set(numbers)
        top = max(seen, default=self.newest)
        if top > self.newest:
            first_skipped = max(self.newest + 1, top - MAX_MISSING)
            for number in range(first_skipped, top):
                if number not in seen:
                    self.missing[number] = now
            self.newest = top
        for number in seen:
            self.missing.pop(number, None)
        self.missing = {n: at for n, at in self.missing.items() if now - at < PATIENCE_S}
        if len(self.missing) > MAX_MISSING:
            self.missing = dict(sorted(self.missing.items())[-MAX_MISSING:])
