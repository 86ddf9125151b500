"""Four eyes on large points adjustments: customer service asks, finance approves (or rejects)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from campaigns import ledger, rewards
from campaigns.members.errors import ApprovalRefused, InvalidMemberInput, MemberNotFound, ObjectNotFound
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("campaigns.members.sql", "adjustments.sql")


class AdjustmentRequest(msgspec.Struct, frozen=True):
    id: int
    member_id: uuid.UUID
    amount: int
    reason: str
    requested_by: str
    requested_at: dt.datetime
    status: Literal["pending", "approved", "rejected"]
    decided_by: str | None
    decided_at: dt.datetime | None
    # Why it was decided so: every rejection says why, an approval may (null before it was recorded).
    decision_reason: str | None


class DecisionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Finance's word on a decision: required to reject (the requester and the audit learn why)."""

    # One line of text, as the request's own reason; a NUL is refused as in every clear-text column.
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=200, pattern=r"^[^\x00]+$")] | None = None


class UnknownDecision(InvalidMemberInput):
    def __init__(self, decision: str) -> None:
        super().__init__("decision", f"{decision!r} is neither approve nor reject")


class _Points(msgspec.Struct, frozen=True):
    points: int


async def approval_threshold(conn: AsyncConnection[Any], brand_id: uuid.UUID) -> int:
    found = await fetch_one(conn, QUERIES["approval_threshold"], {"brand_id": brand_id}, _Points)
    assert found is not None
    return found.points


async def request(
    conn: AsyncConnection[Any], member: ledger.Member, data: rewards.AdjustmentIn, *, actor: str
) -> AdjustmentRequest:
    created = await fetch_one(
        conn,
        QUERIES["request_adjustment"],
        {
            "brand_id": member.brand_id,
            "member_id": member.member_id,
            "amount": data.amount,
            "reason": data.reason,
            "actor": actor,
        },
        AdjustmentRequest,
    )
    if created is None:
        raise MemberNotFound(member.member_id)
    return created


async def list_requests(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, *, status: str, after: int | None, limit: int
) -> list[AdjustmentRequest]:
    return await fetch_all(
        conn,
        QUERIES["list_requests"],
        {"brand_id": brand_id, "status": status, "after": after, "limit": limit},
        AdjustmentRequest,
    )


async def decide(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    request_id: int,
    *,
    approve: bool,
    reason: str | None,
    actor: str,
    now: dt.datetime,
) -> tuple[AdjustmentRequest, rewards.Adjustment | None]:
    """Close a pending request, a rejection with its reason; an approval writes the ledger in the same
    transaction."""
    if not approve and reason is None:
        raise InvalidMemberInput("reason", "say why the request is rejected")
    params = {"brand_id": brand_id, "request_id": request_id}
    pending = await fetch_one(conn, QUERIES["lock_request"], params, AdjustmentRequest)
    if pending is None:
        raise ObjectNotFound("adjustment request", request_id)
    if pending.status != "pending":
        raise ApprovalRefused(f"the request was already {pending.status}")
    if pending.requested_by == actor:
        raise ApprovalRefused("a request is decided by someone other than its requester")
    decided = await fetch_one(
        conn,
        QUERIES["decide_request"],
        {
            **params,
            "status": "approved" if approve else "rejected",
            "actor": actor,
            "now": now,
            "reason": reason,
        },
        AdjustmentRequest,
    )
    assert decided is not None
    if not approve:
        return decided, None
    adjustment = await rewards.adjust_points(
        conn,
        ledger.Member(brand_id, pending.member_id),
        rewards.AdjustmentIn(amount=pending.amount, reason=pending.reason),
        actor=pending.requested_by,
        now=now,
    )
    return decided, adjustment
