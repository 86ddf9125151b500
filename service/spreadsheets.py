"""CSV for people's spreadsheets: a typed-in name must never run as a formula there (CSV injection)."""

from __future__ import annotations

# What spreadsheet programs read as the start of a formula.
_FORMULA_STARTS = frozenset({"=", "+", "-", "@", "\t", "\r"})


def safe_cell(text: str) -> str:
    return f"'{text}" if text[:1] in _FORMULA_STARTS else text
