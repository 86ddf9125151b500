"""Keyset cursors of lists ordered by a time and an id: the scan log's reports, winners, prize claims."""

from __future__ import annotations

import datetime as dt
import uuid


def time_cursor(at: dt.datetime, row_id: uuid.UUID) -> str:
    """`<time>,<id>`, the time in UTC with a Z: no `+` that a URL would read as a space when the cursor
    is pasted back as it came."""
    return f"{at.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')},{row_id}"


def parse_time_cursor(raw: str) -> tuple[dt.datetime, uuid.UUID]:
    """ValueError when `raw` is not a cursor time_cursor gave (a time without its zone included)."""
    at, _, row_id = raw.partition(",")
    time = dt.datetime.fromisoformat(at)
    if time.tzinfo is None:
        raise ValueError("a cursor's time has its zone")
    return time, uuid.UUID(row_id)
