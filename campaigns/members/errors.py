"""Errors of the membership domain; they carry data and know nothing of HTTP."""

from __future__ import annotations


class MembersError(Exception):
    """Base of the errors raised by campaigns/members."""

    field: str | None = None


class InvalidMemberInput(MembersError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidMemberToken(MembersError):
    """The member token is forged, for another brand, or malformed."""

    field = "member_token"


class OtpRejected(MembersError):
    """Wrong, expired or exhausted one-time password."""

    field = "otp"


class OtpThrottled(MembersError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
