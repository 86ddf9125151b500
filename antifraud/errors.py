"""Errors of the scan and anti-fraud path; they carry data and know nothing of HTTP."""

from __future__ import annotations


class AntifraudError(Exception):
    """Base of the errors raised by antifraud/."""

    field: str | None = None


class Throttled(AntifraudError):
    """A device, IP or member exceeded its scan rate; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(AntifraudError):
    """PostgreSQL could not take the scan; nothing was acknowledged."""

    retry_after = 2


class Blocked(AntifraudError):
    """The brand blocked this device, member or network (`kind`); the scan is refused and not logged."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"scans from this {kind} are blocked by the brand")
        self.kind = kind
