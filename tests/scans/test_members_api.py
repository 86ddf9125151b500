"""Phone enrolment: OTP by the development SMS adapter, consent, merge, limits, no phone in clear."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import msgspec
import psycopg
import redis.asyncio
from litestar.testing import AsyncTestClient

from campaigns import ledger
from campaigns.members.tokens import MemberRef, MemberTokens
from service.app import create_app
from service.models import Role
from service.routes.scans import MEMBER_COOKIE
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


async def enroll(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], token: str, *, send: bool = True
) -> Any:
    """Enrol with the newest OTP (sent first unless the caller already asked for one)."""
    if send:
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
    async def test_a_merged_devices_points_move_to_the_phone_member(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """The anonymous member's points move with it (same expiry); each ledger still sums to its balance."""
        issued: IssuedBatch = await issue_batch(db, settings, tenant_a.brand_id)
        phone_member = (
            await enroll(client, db, await scanned_token(client, issued.urls[0], "device-pts-1"))
        ).json()
        await forget_resend_cooldown(settings)
        client.cookies.clear()  # another phone: no member cookie yet
        token = await scanned_token(client, issued.urls[1], "device-pts-2")
        anonymous = MemberTokens(settings.master_key).read(token)
        assert str(anonymous.member_id) != phone_member["member"]["id"]
        now = dt.datetime.now(dt.UTC)
        source = ledger.Member(tenant_a.brand_id, anonymous.member_id)
        target = ledger.Member(tenant_a.brand_id, uuid.UUID(phone_member["member"]["id"]))
        await ledger.earn(db, target, 5, reason="test", source="test", now=now)
        soon = now + dt.timedelta(days=40)
        await ledger.earn(db, source, 30, reason="test", source="test", now=now, expires_at=soon)
        await ledger.earn(db, source, 12, reason="test", source="test", now=now)
        await db.commit()
        merged = (await enroll(client, db, token)).json()["member"]
        assert merged["id"] == phone_member["member"]["id"]
        assert merged["points_balance"] == 47
        # The anonymous member's old token now scans as the phone's member, and gets that member's token.
        client.cookies.clear()
        old = await client.post(
            "/v1/scans", json={"code": issued.urls[2], "device_id": "device-pts-3", "member_token": token}
        )
        assert old.json()["member"] == {"id": merged["id"], "enrolled": True, "points_balance": 47}
        reissued = MemberTokens(settings.master_key).read(old.json()["member_token"])
        assert reissued.member_id == target.member_id
        assert (await ledger.balance(db, source, now=now)).balance == 0
        moved = await ledger.balance(db, target, now=now, soon_days=60)
        assert (moved.balance, moved.expiring_soon) == (47, 30)  # the moved lot kept its expiry
        for member in (source, target):
            cur = await db.execute(
                "SELECT sum(amount) FROM points_ledger WHERE member_id = %s", [member.member_id]
            )
            assert (await cur.fetchone() or [None])[0] == (await ledger.balance(db, member, now=now)).balance

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

    async def test_the_per_ip_otp_limit_counts_forwarded_addresses_behind_a_trusted_proxy(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """20 OTPs an hour per address: phones behind one proxy are not one address; one address is."""
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        proxied = msgspec.structs.replace(settings, trust_forwarded_for=True)
        async with AsyncTestClient(app=create_app(proxied)) as client:
            token = await scanned_token(client, issued.urls[0], "device-proxy-1")

            async def otp(n: int, address: str) -> int:
                body = {"phone": f"1390000{n:04d}", "member_token": token}
                sent = await client.post("/v1/members/otp", json=body, headers={"X-Forwarded-For": address})
                return sent.status_code

            assert [await otp(n, f"10.0.0.{n}") for n in range(25)] == [202] * 25
            same = [await otp(100 + n, "10.9.9.9") for n in range(21)]
            assert same == [202] * 20 + [429]

    async def test_otp_needs_a_member_token(self, client: AsyncTestClient[Any]) -> None:
        """Enrolment starts from a scan; a forged token is refused."""
        assert_problem(
            await client.post("/v1/members/otp", json={"phone": PHONE}), 401, "invalid-member-token"
        )
        forged = await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": "m1.x.y.0.sig"})
        assert_problem(forged, 401, "invalid-member-token")


async def new_member(db: psycopg.AsyncConnection[Any], settings: Settings, brand_id: uuid.UUID) -> Any:
    """A member row and the cookie header its signed token travels in, as after a first scan."""
    member_id = uuid.uuid4()
    await db.execute("INSERT INTO members (id, brand_id) VALUES (%s, %s)", (member_id, brand_id))
    token = MemberTokens(settings.master_key).issue(MemberRef(member_id, brand_id, enrolled=False))
    return ledger.Member(brand_id, member_id), {"Cookie": f"{MEMBER_COOKIE}={token}"}


class TestMyRewards:
    async def test_no_token_and_a_token_of_another_brand_cannot_read(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """Without a member token: 401; a validly signed token naming brand A's member under brand B: 401."""
        assert_problem(await client.get("/v1/members/me/rewards"), 401, "invalid-member-token")
        member, _ = await new_member(db, settings, tenant_a.brand_id)
        await ledger.earn(db, member, 30, reason="scan", source="test", now=dt.datetime.now(dt.UTC))
        crossed = MemberTokens(settings.master_key).issue(
            MemberRef(member.member_id, tenant_b.brand_id, enrolled=False)
        )
        response = await client.get(
            "/v1/members/me/rewards", headers={"Cookie": f"{MEMBER_COOKIE}={crossed}"}
        )
        assert_problem(response, 401, "invalid-member-token")
        _, b_cookie = await new_member(db, settings, tenant_b.brand_id)
        own = (await client.get("/v1/members/me/rewards", headers=b_cookie)).json()
        assert own["balance"] == 0 and own["entries"] == [] and own["prizes"] == []

    async def test_balance_is_the_ledger_sum_and_pages_go_newest_first(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """After earning and spending via the ledger, the balance equals the sum of every page's entries."""
        member, cookie = await new_member(db, settings, tenant_a.brand_id)
        now = dt.datetime.now(dt.UTC)
        for amount in (10, 25, 40):
            await ledger.earn(db, member, amount, reason="scan", source="test", now=now)
        async with db.transaction():
            await ledger.spend(db, member, 30, reason="gift", source="test", now=now)
        entries: list[dict[str, Any]] = []
        url = "/v1/members/me/rewards?limit=2"
        while True:
            body = (await client.get(url, headers=cookie)).json()
            entries += body["entries"]
            if body["next_before"] is None:
                break
            url = f"/v1/members/me/rewards?limit=2&before={body['next_before']}"
        assert body["balance"] == 45 == sum(e["amount"] for e in entries)
        ids = [e["id"] for e in entries]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids) == 5
        whole = (await client.get("/v1/members/me/rewards?limit=5", headers=cookie)).json()
        assert len(whole["entries"]) == 5 and whole["next_before"] is None  # no empty page after the last
        too_big = await client.get("/v1/members/me/rewards?limit=100000", headers=cookie)
        assert_problem(too_big, 422, "validation-error")

    async def test_a_prize_won_in_a_draw_is_listed(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        """A draw the member wins shows its prize, kind, campaign and time; another member sees nothing."""
        _, cookie = await new_member(db, settings, tenant_a.brand_id)
        _, other_cookie = await new_member(db, settings, tenant_a.brand_id)
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=2)
        now = dt.datetime.now(dt.UTC)
        body = {
            "name": "Sure win",
            "kind": "lucky_draw",
            "starts_at": (now - dt.timedelta(days=1)).isoformat(),
            "ends_at": (now + dt.timedelta(days=1)).isoformat(),
            "budget_cents": 100_000,
            "prizes": [{"name": "Bike", "kind": "physical", "weight": 1, "stock": 1, "cost_cents": 30_000}],
        }
        created = await client.post("/v1/campaigns", json=body, headers=tenant_a.headers(Role.MARKETER))
        campaign_id = created.json()["id"]
        activated = await client.post(
            f"/v1/campaigns/{campaign_id}:activate", headers=tenant_a.headers(Role.MARKETER)
        )
        assert activated.status_code == 200, activated.text
        client.cookies.clear()
        scanned = await client.post(
            "/v1/scans", json={"code": issued.urls[0], "device_id": "device-sure-win"}, headers=cookie
        )
        assert scanned.json()["reward"]["outcomes"][0]["result"] == "won"
        prizes = (await client.get("/v1/members/me/rewards", headers=cookie)).json()["prizes"]
        assert [(p["name"], p["kind"], p["campaign_name"], p["slot"]) for p in prizes] == [
            ("Bike", "physical", "Sure win", 1)
        ]
        assert prizes[0]["won_at"] == scanned.json()["first_scanned_at"]
        assert (await client.get("/v1/members/me/rewards", headers=other_cookie)).json()["prizes"] == []
