"""Phone enrolment: OTP by the development SMS adapter, consent, merge, limits, no phone in clear."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import redis.asyncio
from litestar.testing import AsyncTestClient

from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

PHONE = "138 0013 8000"


async def latest_otp(db: psycopg.AsyncConnection[Any]) -> str:
    cur = await db.execute("SELECT body FROM sms_outbox ORDER BY id DESC LIMIT 1")
    row = await cur.fetchone()
    assert row is not None
    match = re.search(r"\b(\d{6})\b", row[0])
    assert match is not None
    return match.group(1)


async def scanned_token(client: AsyncTestClient[Any], url: str, device_id: str) -> str:
    body = (await client.post("/v1/scans", json={"code": url, "device_id": device_id})).json()
    return str(body["member_token"])


async def forget_resend_cooldown(settings: Settings) -> None:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    async for key in client.scan_iter(match=f"{settings.redis_prefix}otp:cool:*"):
        await client.delete(key)
    await client.aclose()


async def enroll(client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], token: str) -> Any:
    sent = await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
    assert sent.status_code == 202, sent.text
    return await client.post(
        "/v1/members/enroll",
        json={
            "phone": "+86 138-0013-8000",
            "otp": await latest_otp(db),
            "consent_marketing": True,
            "consent_location": False,
            "member_token": token,
        },
    )


class TestEnrolment:
    async def test_enrol_then_a_second_device_merges_into_the_phone_member(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """Enrolment gives the device's member a phone; another device enrolling the same phone joins it."""
        issued: IssuedBatch = await issue_batch(db, settings, tenant_a.brand_id)
        first = await enroll(client, db, await scanned_token(client, issued.urls[0], "device-phone-1"))
        assert first.status_code == 200, first.text
        member = first.json()["member"]
        assert member["enrolled"] is True and member["phone_last4"] == "8000"
        assert member["consent_marketing_at"] and member["consent_location_at"] is None
        await forget_resend_cooldown(settings)  # as if a minute had passed
        second = await enroll(client, db, await scanned_token(client, issued.urls[1], "device-phone-2"))
        assert second.json()["member"]["id"] == member["id"]
        later = (
            await client.post("/v1/scans", json={"code": issued.urls[2], "device_id": "device-phone-2"})
        ).json()
        assert later["member"] == {"id": member["id"], "enrolled": True, "points_balance": 0}
        cur = await db.execute("SELECT string_agg(m::text, '') FROM members m")
        dump = (await cur.fetchone() or [""])[0]
        assert "13800138000" not in dump
        cur = await db.execute("SELECT string_agg(s::text, '') FROM sms_outbox s")
        assert "13800138000" not in (await cur.fetchone() or [""])[0]

    async def test_wrong_otp_and_bad_phone_and_missing_consent(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id)
        token = await scanned_token(client, issued.urls[3], "device-phone-3")
        bad_phone = await client.post("/v1/members/otp", json={"phone": "12345", "member_token": token})
        assert assert_problem(bad_phone, 422, "validation-error")["errors"][0]["field"] == "phone"
        await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
        wrong = await client.post(
            "/v1/members/enroll",
            json={
                "phone": PHONE,
                "otp": "000000",
                "consent_marketing": False,
                "consent_location": False,
                "member_token": token,
            },
        )
        assert_problem(wrong, 422, "otp-rejected")
        no_consent = await client.post(
            "/v1/members/enroll", json={"phone": PHONE, "otp": "123456", "member_token": token}
        )
        assert_problem(no_consent, 422, "validation-error")
        resend = await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
        assert_problem(resend, 429, "rate-limited")
        assert int(resend.headers["retry-after"]) >= 1

    async def test_otp_needs_a_member_token(self, client: AsyncTestClient[Any]) -> None:
        """Enrolment starts from a scan; a forged token is refused."""
        assert_problem(
            await client.post("/v1/members/otp", json={"phone": PHONE}), 401, "invalid-member-token"
        )
        forged = await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": "m1.x.y.0.sig"})
        assert_problem(forged, 401, "invalid-member-token")
