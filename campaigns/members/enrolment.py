"""Phone enrolment: a one-time password by SMS, then the device's anonymous member gains a phone.

Enrolling a phone that already belongs to a member merges the device's anonymous member into it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from campaigns import ledger
from campaigns.members import profiles
from campaigns.members.errors import OtpRejected, OtpThrottled
from campaigns.members.phones import MemberVault, normalize_phone
from campaigns.members.profiles import Profile
from service.db import fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from redis.asyncio import Redis, RedisCluster

QUERIES = load_queries("campaigns.members.sql", "members.sql")

OTP_TTL_S = 300
OTP_MAX_ATTEMPTS = 5
OTP_PER_PHONE_HOUR = 5
OTP_PER_IP_HOUR = 20
OTP_RESEND_S = 60


class Member(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    phone_last4: str | None
    merged_into: uuid.UUID | None
    created_at: dt.datetime
    enrolled_at: dt.datetime | None
    consent_marketing_at: dt.datetime | None
    consent_location_at: dt.datetime | None


class SmsAdapter(Protocol):
    """Sends one text message. Production adapters wrap an SMS provider; none is built in."""

    async def send(
        self,
        conn: AsyncConnection[Any],
        *,
        brand_id: uuid.UUID,
        phone_e164: str,
        phone_index: bytes,
        body: str,
    ) -> None: ...


class DevelopmentSms:
    """Records messages in `sms_outbox` (by blind index, never the number) instead of sending them."""

    async def send(
        self,
        conn: AsyncConnection[Any],
        *,
        brand_id: uuid.UUID,
        phone_e164: str,
        phone_index: bytes,
        body: str,
    ) -> None:
        del phone_e164  # never stored in clear
        await conn.execute(
            QUERIES["record_sms"], {"brand_id": brand_id, "phone_index": phone_index, "body": body}
        )


class Enrolment:
    def __init__(
        self, redis: Redis | RedisCluster, vault: MemberVault, sms: SmsAdapter, *, prefix: str
    ) -> None:
        self._redis = redis
        self._vault = vault
        self._sms = sms
        self._prefix = prefix

    async def request_otp(
        self, conn: AsyncConnection[Any], *, brand_id: uuid.UUID, phone: str, ip: str | None
    ) -> int:
        """Send a 6-digit code and return its lifetime in seconds; limited per phone, per IP, per minute."""
        phone_e164 = normalize_phone(phone)
        index = self._vault.blind_index(brand_id, phone_e164)
        tag = index.hex()[:32]
        hour = int(time.time() // 3600)
        p = self._prefix
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{p}otp:cool:{tag}", 1, nx=True, ex=OTP_RESEND_S)
            pipe.incr(f"{p}otp:ph:{tag}:{hour}")
            pipe.expire(f"{p}otp:ph:{tag}:{hour}", 3600)
            pipe.incr(f"{p}otp:ip:{ip}:{hour}")
            pipe.expire(f"{p}otp:ip:{ip}:{hour}", 3600)
            fresh, per_phone, _, per_ip, _ = await pipe.execute()
        retry_after = 3600 - time.time() % 3600
        if not fresh:
            raise OtpThrottled("a code was sent less than a minute ago", retry_after=OTP_RESEND_S)
        if per_phone > OTP_PER_PHONE_HOUR:
            raise OtpThrottled("too many codes for this phone this hour", retry_after=retry_after)
        if ip is not None and per_ip > OTP_PER_IP_HOUR:
            raise OtpThrottled("too many codes from this network this hour", retry_after=retry_after)
        code = f"{secrets.randbelow(10**6):06d}"
        await self._redis.hset(f"{p}otp:{tag}", mapping={"h": _otp_hash(index, code), "a": 0})
        await self._redis.expire(f"{p}otp:{tag}", OTP_TTL_S)
        await self._sms.send(
            conn,
            brand_id=brand_id,
            phone_e164=phone_e164,
            phone_index=index,
            body=f"Your OneCode verification code is {code}. It expires in 5 minutes.",
        )
        return OTP_TTL_S

    async def enroll(
        self,
        conn: AsyncConnection[Any],
        *,
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        phone: str,
        otp: str,
        consent_marketing: bool,
        consent_location: bool,
        profile: Profile | None,
    ) -> Member:
        """Check the code, then give the member a phone, or merge it into the phone's existing member."""
        phone_e164 = normalize_phone(phone)
        index = self._vault.blind_index(brand_id, phone_e164)
        if profile is not None:
            profiles.check_profile(profile, dt.datetime.now(dt.UTC).date())
        await self._check_otp(index, otp)
        params = {
            "brand_id": brand_id,
            "consent_marketing": consent_marketing,
            "consent_location": consent_location,
        }
        existing = await fetch_one(
            conn,
            QUERIES["find_by_phone"],
            {"brand_id": brand_id, "phone_indexes": self._vault.blind_indexes(brand_id, phone_e164)},
            Member,
        )
        owner = member_id if existing is None else existing.id
        if existing is None:
            await conn.execute(QUERIES["create_member"], {"member_id": member_id, "brand_id": brand_id})
        key = await profiles.data_key(conn, self._vault, brand_id, owner)
        params["profile_sealed"] = (
            None if profile is None else profiles.seal_profile(self._vault, key, brand_id, profile)
        )
        if profile is not None:  # the enrolment's profile replaces any earlier one, birthday included
            await profiles.set_birthday_md(conn, brand_id, owner, profile.birthday)
        if existing is not None:
            if existing.id != member_id:
                await conn.execute(
                    QUERIES["merge_member"],
                    {"brand_id": brand_id, "source_id": member_id, "target_id": existing.id},
                )
                # The device's points go with it.
                await ledger.transfer(
                    conn,
                    ledger.Member(brand_id, member_id),
                    ledger.Member(brand_id, existing.id),
                    reason="member merged on phone enrolment",
                    now=dt.datetime.now(dt.UTC),
                )
            updated = await fetch_one(
                conn, QUERIES["update_consents"], {**params, "member_id": existing.id}, Member
            )
        else:
            updated = await fetch_one(
                conn,
                QUERIES["enroll_member"],
                {
                    **params,
                    "member_id": member_id,
                    "phone_sealed": self._vault.seal(key, brand_id, "phone", phone_e164.encode()),
                    "phone_index": index,
                    "phone_last4": phone_e164[-4:],
                },
                Member,
            )
        assert updated is not None
        return updated

    async def _check_otp(self, index: bytes, otp: str) -> None:
        key = f"{self._prefix}otp:{index.hex()[:32]}"
        attempts = await self._redis.hincrby(key, "a", 1)
        stored = await self._redis.hget(key, "h")
        if stored is None or attempts > OTP_MAX_ATTEMPTS:
            await self._redis.delete(key)  # hincrby re-created an expired key without a TTL
            raise OtpRejected("the code expired or had too many attempts; request a new one")
        if not hmac.compare_digest(
            stored.decode() if isinstance(stored, bytes) else str(stored), _otp_hash(index, otp)
        ):
            raise OtpRejected("wrong code")
        await self._redis.delete(key)


def _otp_hash(index: bytes, code: str) -> str:
    return hashlib.sha256(index + code.encode()).hexdigest()
