"""Named SQL queries loaded from `.sql` files: `-- name --` blocks, like procrastinate's queries.sql."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a file into {name: query}; the lines under a header up to the next header form the query."""
    queries: dict[str, LiteralString] = {}
    parts = _HEADER.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        # The text comes from files shipped in the package, never from input: safe to treat as literal.
        queries[name] = "\n".join(lines).strip()
    return queries


def load_queries(package: str, filename: str) -> dict[str, LiteralString]:
    """Load the named queries of `filename` shipped inside `package`."""
    return parse_queries(resources.files(package).joinpath(filename).read_text(encoding="utf-8"))
