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
