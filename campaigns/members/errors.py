"""Errors of the membership domain; they carry data and know nothing of HTTP."""

from __future__ import annotations


class MembersError(Exception):
    """Base of the errors raised by campaigns/members."""

    field: str | None = None


class InvalidMemberInput(MembersError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NameTaken(MembersError):
    """Another tag or segment of the brand has this name."""

    field = "name"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"a {kind} named {name!r} exists")
        self.kind = kind
        self.name = name


class TagInUse(MembersError):
    """Saved segments filter on the tag: deleting it would leave them naming an unknown tag."""

    field = "name"

    def __init__(self, name: str, segments: list[str]) -> None:
        super().__init__(f"tag {name!r} is named by segments: {', '.join(segments)}")
        self.name = name
        self.segments = segments


class TierInUse(MembersError):
    """A new ladder would drop tiers that campaigns still name (they would silently never apply)."""

    field = "tiers"

    def __init__(self, campaigns: dict[str, list[str]]) -> None:
        named = "; ".join(f"{campaign}: {', '.join(tiers)}" for campaign, tiers in campaigns.items())
        super().__init__(f"campaigns name tiers this ladder drops ({named}): change the campaigns first")
        self.campaigns = campaigns


class AttributeInUse(MembersError):
    """A retype that stored values or saved segment filters would not fit."""

    field = "type"

    def __init__(self, name: str, new_type: str, members: int, segments: list[str]) -> None:
        held_by = [f"{members} members"] if members else []
        held_by += [f"segments {', '.join(segments)}"] if segments else []
        super().__init__(
            f"values of {name!r} that are not a valid {new_type} are held by {' and '.join(held_by)}: "
            "change them first"
        )
        self.name = name
        self.members = members
        self.segments = segments


class LimitReached(MembersError):
    """A brand holds as many of these as it may (each one costs every list, and rule tags every refresh)."""

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"a brand has at most {limit} {kind}; delete one first")
        self.kind = kind
        self.limit = limit


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


class ObjectNotFound(MembersError):
    def __init__(self, kind: str, object_id: object) -> None:
        super().__init__(f"no {kind} {object_id}")
        self.kind = kind
        self.object_id = object_id


class MemberNotFound(ObjectNotFound):
    def __init__(self, member_id: object) -> None:
        super().__init__("member", member_id)


class MemberErased(MembersError):
    """The member asked for erasure: nothing personal is left to read or write."""

    def __init__(self, member_id: object) -> None:
        super().__init__(f"member {member_id} was erased")
        self.member_id = member_id


class ApprovalRefused(MembersError):
    """A points adjustment request that is not pending, or decided by its own requester."""


class DeliveryNotRetryable(MembersError):
    """Only a delivery that gave up (failed) or was cancelled can be sent again; the others are in hand."""

    def __init__(self, delivery_id: int, status: str) -> None:
        super().__init__(f"delivery {delivery_id} is {status}; only failed or cancelled ones can be retried")
        self.delivery_id = delivery_id
        self.status = status


class SegmentInUse(MembersError):
    """A campaign that may still reward scans names the segment."""

    def __init__(self, segment_id: object, campaigns: list[str]) -> None:
        super().__init__(f"segment {segment_id} is named by campaigns: {', '.join(campaigns)}")
