"""Partial updates of a settings document: `PATCH` changes the fields it names, `PUT` replaces them all."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from service.errors import InvalidField

T = TypeVar("T", bound=msgspec.Struct)


def apply_patch(current: T, changes: dict[str, Any]) -> T:
    """`current` with the fields `changes` names set (null included: it clears an optional one), checked
    as a whole by the settings' own type, so a patch can never save what a PUT could not."""
    merged = {**msgspec.to_builtins(current), **changes}
    try:
        return msgspec.convert(merged, type(current))
    except msgspec.ValidationError as exc:
        raise InvalidField.from_validation(exc) from None
