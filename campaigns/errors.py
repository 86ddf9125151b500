"""Errors of campaigns and the points ledger; they carry data and know nothing of HTTP."""

from __future__ import annotations


class CampaignError(Exception):
    """Base of the errors raised by campaigns/."""

    field: str | None = None


class InsufficientPoints(CampaignError):
    field = "amount"

    def __init__(self, *, wanted: int, available: int) -> None:
        super().__init__(f"{wanted} points wanted, {available} available")
        self.wanted = wanted
        self.available = available


class InvalidAmount(CampaignError):
    field = "amount"


class InvalidCampaign(CampaignError):
    """A campaign's settings break a rule; `field_errors` lists every (field, message) found."""

    def __init__(self, field: str, message: str, *, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.field_errors = [(field, message), *(more or [])]


class CampaignNotFound(CampaignError):
    """No such campaign (or prize) in the caller's brand: another brand's is reported the same way."""

    def __init__(self, kind: str, object_id: object) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.object_id = object_id


class InvalidTransition(CampaignError):
    """The lifecycle does not allow this step from the campaign's current status."""

    field = "status"

    def __init__(self, *, action: str, status: str) -> None:
        super().__init__(f"cannot {action} a campaign that is {status}")
        self.action = action
        self.status = status


class LiveChangeNotConfirmed(CampaignError):
    """A live (scheduled, active or paused) campaign's rules changed without `"live_change": true`."""

    field = "live_change"

    def __init__(self, status: str) -> None:
        super().__init__(f'the campaign is {status}: send "live_change": true to change its rules')
        self.status = status


class CampaignLocked(CampaignError):
    """The change can never be made in the campaign's state (an ended campaign, committed draw weights)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SeedNotRevealed(CampaignError):
    """A draw's outcomes can be checked only once the campaign ended and its seed was published."""

    field = "status"

    def __init__(self, *, status: str) -> None:
        super().__init__(f"the campaign is {status}: its seed is revealed only when it ends")
        self.status = status


class PrizeNotClaimable(CampaignError):
    """Only physical prizes are shipped, and a shipped prize's address cannot change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidCoupon(CampaignError):
    """A coupon template's settings break a rule; `field_errors` lists every (field, message) found."""

    def __init__(self, field: str, message: str, *, more: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.field_errors = [(field, message), *(more or [])]


class CouponNotFound(CampaignError):
    """No coupon (or template) of that code or id: a code that was never issued looks the same."""

    def __init__(self, kind: str, object_id: object) -> None:
        super().__init__(f"{kind} {object_id} not found")
        self.object_id = object_id


class CouponNotUsable(CampaignError):
    """The coupon exists but cannot be used now: `reason` is expired, used or not_yet_valid."""

    field = "code"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.slug = "coupon-" + reason.replace("_", "-")


class CouponForeign(CampaignError):
    """The coupon is another brand's: said plainly, since a cashier needs to know why it fails."""

    field = "code"


class CouponBelowMinimumSpend(CampaignError):
    field = "spend_cents"

    def __init__(self, *, minimum_cents: int) -> None:
        super().__init__(f"the coupon needs a spend of at least {minimum_cents / 100:.2f}")
        self.minimum_cents = minimum_cents


class OrderAlreadyRedeemed(CampaignError):
    """The order already redeemed this coupon with another amount: a retry must repeat the same request."""

    field = "spend_cents"

    def __init__(self, order_ref: str) -> None:
        super().__init__(f"order {order_ref!r} already redeemed this coupon with a different spend")
        self.order_ref = order_ref


class CampaignOverlap(CampaignError):
    """Two live campaigns would claim the same scans with nothing to rank them (same priority, not both
    stackable, overlapping schedules and products): which one rewards a scan would be arbitrary."""

    field = "priority"

    def __init__(self, *, rival_id: object, rival_name: str) -> None:
        super().__init__(
            f"campaign {rival_name!r} ({rival_id}) rewards the same scans at the same priority over an "
            "overlapping schedule: give one a different priority, make both stackable, or narrow one"
        )
        self.rival_id = rival_id


class PrizeNotShippable(CampaignError):
    """The win cannot be marked shipped: `reason` is not_claimed (no address yet), already_shipped or
    not_physical (points, coupons and cash are delivered by themselves)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.slug = "prize-" + reason.replace("_", "-")
