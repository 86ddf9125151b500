"""Consumer-side member endpoints: one-time password by SMS, phone enrolment, the member's own view."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from psycopg import AsyncConnection

from antifraud.clients import client_ip
from campaigns import ledger, rewards
from campaigns.members import consents, profiles
from campaigns.members.errors import InvalidMemberToken
from campaigns.members.profiles import Profile
from campaigns.members.tokens import MemberRef
from service import audit
from service.routes.admin import Limit
from service.routes.scans import MEMBER_COOKIE, member_cookie
from service.settings import Settings
from service.state import AppState

MemberToken = Annotated[str, msgspec.Meta(max_length=256)]
Phone = Annotated[str, msgspec.Meta(min_length=5, max_length=32)]


class OtpIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Phone
    member_token: MemberToken | None = None


class OtpSent(msgspec.Struct, frozen=True):
    sent: bool
    expires_in: int


class EnrollIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    phone: Phone
    otp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
    # Explicit choices, no defaults: the consumer must answer both.
    consent_marketing: bool
    consent_location: bool
    profile: Profile | None = None
    member_token: MemberToken | None = None


class MemberView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    enrolled: bool
    phone_last4: str | None
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None
    points_balance: int


class Enrolled(msgspec.Struct, frozen=True):
    member: MemberView
    member_token: str


class Me(msgspec.Struct, frozen=True):
    """The token's member and the consents it holds now (null: not given, or withdrawn)."""

    member_id: uuid.UUID
    brand_id: uuid.UUID
    enrolled: bool
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None

    @classmethod
    def of(cls, brand_id: uuid.UUID, holder: consents.Holder) -> Me:
        # From the database, not the token: a token minted before enrolment still says "anonymous".
        return cls(
            member_id=holder.member_id,
            brand_id=brand_id,
            enrolled=holder.enrolled,
            consent_marketing_at=holder.consents.consent_marketing_at,
            consent_location_at=holder.consents.consent_location_at,
        )


def _state(request: Request[Any, Any, Any]) -> AppState:
    state: AppState = request.app.state.onecode
    return state


async def living_member(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> MemberRef:
    """The member the cookie's token names, refused with 410 once erased (the token outlives it)."""
    member = current_member(request, None)
    await consents.current(db, member.brand_id, member.member_id)
    return member


def current_member(request: Request[Any, Any, Any], body_token: str | None) -> MemberRef:
    """The member of the token in the body or the cookie the consumer page received with its scan."""
    token = body_token or request.cookies.get(MEMBER_COOKIE)
    if not token:
        raise InvalidMemberToken("scan a code first: no member token")
    try:
        return _state(request).member_tokens.read(token)
    except ValueError:
        raise InvalidMemberToken("the member token is not valid") from None


@post("/members/otp", status_code=202, tags=["members"])
async def request_otp(request: Request[Any, Any, Any], db: AsyncConnection[Any], data: OtpIn) -> OtpSent:
    """Send a one-time password to the phone (development adapter: recorded, not sent)."""
    member = current_member(request, data.member_token)
    # Behind a trusted proxy the per-IP OTP limit must count phones' addresses, not the proxy's.
    ip = client_ip(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        trust_forwarded_for=_state(request).settings.trust_forwarded_for,
    )
    expires_in = await _state(request).enrolment.request_otp(
        db, brand_id=member.brand_id, phone=data.phone, ip=ip
    )
    return OtpSent(sent=True, expires_in=expires_in)


@post("/members/enroll", status_code=200, tags=["members"])
async def enroll(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: EnrollIn
) -> Response[Enrolled]:
    """Check the one-time password and attach the phone; the device's anonymous member merges into it."""
    state = _state(request)
    member = current_member(request, data.member_token)
    enrolled = await state.enrolment.enroll(
        db,
        brand_id=member.brand_id,
        member_id=member.member_id,
        phone=data.phone,
        otp=data.otp,
        consent_marketing=data.consent_marketing,
        consent_location=data.consent_location,
        profile=data.profile,
    )
    token = state.member_tokens.issue(MemberRef(enrolled.id, enrolled.brand_id, enrolled=True))
    points = await ledger.balance(
        db, ledger.Member(enrolled.brand_id, enrolled.id), now=dt.datetime.now(dt.UTC)
    )
    view = MemberView(
        id=enrolled.id,
        brand_id=enrolled.brand_id,
        enrolled=True,
        phone_last4=enrolled.phone_last4,
        consent_marketing_at=enrolled.consent_marketing_at,
        consent_location_at=enrolled.consent_location_at,
        points_balance=points.balance,
    )
    cookie = member_cookie(request.scope.get("scheme"), token)
    return Response(Enrolled(member=view, member_token=token), headers=cookie)


@get("/members/me", tags=["members"])
async def me(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Me:
    """Who the member token says the caller is, and the consents the member holds."""
    member = current_member(request, None)
    return Me.of(member.brand_id, await consents.current(db, member.brand_id, member.member_id))


@patch("/members/me/consents", tags=["members"])
async def change_my_consents(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], data: consents.ConsentsIn
) -> Me:
    """Give or withdraw consents (PIPL): granting keeps the first grant's time, withdrawing clears it.

    Texts waiting to go out are not sent once marketing consent is withdrawn. Each change is audited.
    """
    member = current_member(request, None)
    changed = await consents.change(db, member.brand_id, member.member_id, data)
    if data.location is not None and changed.changed:
        # This worker's scans stop (or resume) using the member's location at once; the others on reload.
        _state(request).location_withdrawals.note(
            [changed.member_id, member.member_id], withdrawn=not data.location
        )
    if changed.changed:
        await audit.record(
            db,
            actor=f"member:{member.member_id}",
            brand_id=member.brand_id,
            action="member.consents",
            object_type="member",
            object_id=changed.member_id,
            before=changed.before,
            after=changed.after,
        )
    return Me.of(member.brand_id, consents.Holder(changed.member_id, changed.enrolled, changed.after))


@get("/members/me/rewards", tags=["members"])
async def my_rewards(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    before: int | None = None,
    limit: Limit = 50,
) -> rewards.Rewards:
    """The member's points balance, a page of the points ledger (newest first), prizes won and coupons."""
    member = await living_member(request, db)
    return await rewards.member_rewards(
        db,
        ledger.Member(member.brand_id, member.member_id),
        before=before,
        limit=min(limit, settings.max_page_size),
        master_keys=settings.all_master_keys,
        now=dt.datetime.now(dt.UTC),
    )


@post("/members/me/prizes/{campaign_id:uuid}/{scan_id:uuid}/claim", status_code=200, tags=["members"])
async def claim_prize(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    campaign_id: uuid.UUID,
    scan_id: uuid.UUID,
    data: rewards.ClaimIn,
) -> rewards.Claim:
    """Give the shipping address of a physical prize won in a draw; it can be corrected until shipped."""
    member = await living_member(request, db)
    return await rewards.claim_prize(
        db,
        ledger.Member(member.brand_id, member.member_id),
        campaign_id=campaign_id,
        scan_id=scan_id,
        data=data,
        master_key=settings.master_key,
        now=dt.datetime.now(dt.UTC),
    )


@get("/members/me/export", tags=["members"])
async def export_my_data(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[bytes]:
    """Everything held about the caller (PIPL data access), as a JSON download."""
    member = await living_member(request, db)
    state = _state(request)
    exported = await profiles.export(
        db,
        state.vault,
        member.brand_id,
        member.member_id,
        master_keys=state.settings.all_master_keys,
        now=dt.datetime.now(dt.UTC),
    )
    return Response(
        msgspec.json.encode(exported),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="member-{member.member_id}.json"'},
    )


@delete("/members/me", status_code=204, tags=["members"])
async def erase_me(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[None]:
    """Erasure (PIPL): personal data becomes unreadable; points and scan statistics stay, anonymous."""
    member = current_member(request, None)
    await profiles.erase(db, _state(request).vault, member.brand_id, member.member_id)
    await audit.record(
        db,
        actor=f"member:{member.member_id}",
        brand_id=member.brand_id,
        action="member.erase",
        object_type="member",
        object_id=member.member_id,
    )
    response: Response[None] = Response(None, status_code=204)
    response.delete_cookie(MEMBER_COOKIE, path="/")
    return response


def members_router() -> Router:
    return Router(
        "/v1",
        route_handlers=[
            request_otp,
            enroll,
            me,
            change_my_consents,
            my_rewards,
            claim_prize,
            export_my_data,
            erase_me,
        ],
    )
