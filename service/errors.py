"""Service-level errors (auth, tenancy, limits). They carry data and know nothing of HTTP status codes."""

from __future__ import annotations

import re

import msgspec


class ServiceError(Exception):
    """Base of the errors raised by service/ code; `service.problems` maps each subclass to HTTP."""

    slug: str | None = None


class Unauthenticated(ServiceError):
    """No credentials, or credentials that are unknown, expired or revoked."""


class Forbidden(ServiceError):
    """The caller is known but its role may not do this."""


class NotFound(ServiceError):
    """The object does not exist, or belongs to another tenant (the two are indistinguishable on purpose)."""

    def __init__(self, kind: str, object_id: object) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.kind = kind
        self.object_id = object_id


class Conflict(ServiceError):
    """The request contradicts the current state (a duplicate, a wrong lifecycle state)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LimitReached(ServiceError):
    """A brand holds as many of these as it may."""

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"a brand has at most {limit} {kind}; remove one first")
        self.kind = kind
        self.limit = limit


class InvalidField(ServiceError):
    """An input value is well-formed but not acceptable; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    @classmethod
    def from_validation(cls, exc: msgspec.ValidationError) -> InvalidField:
        """msgspec's "Expected `int`, got `str` - at `$.devices`" as field `devices` and its message."""
        match = _MSGSPEC_PATH.search(str(exc))
        return cls((match.group(1) if match else "") or "body", str(exc).split(" - at ")[0])


_MSGSPEC_PATH = re.compile(r"at `\$\.?([\w.\[\]]*)`")


class RateLimited(ServiceError):
    """Too many requests from one source; `retry_after` is in seconds."""

    slug = "rate-limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A backing engine is unavailable; the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedBody(ServiceError):
    """The body is not JSON (or not UTF-8)."""


class LoginFailed(Unauthenticated):
    """Wrong address or password (the answer never says which)."""

    slug = "login-failed"


class TotpRequired(Unauthenticated):
    """The password was right; the account's second factor is needed too."""

    slug = "totp-required"
