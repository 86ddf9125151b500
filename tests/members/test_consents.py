"""A member's own consents: given and withdrawn over HTTP, audited, shown, and obeyed by the SMS sender."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from campaigns.members import webhooks
from campaigns.members.consents import LocationWithdrawals
from service.models import Role
from service.routes.scans import MEMBER_COOKIE
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.members.test_webhooks import ahead, birthday_on, deliver, refresh
from tests.scans.test_members_api import forget_resend_cooldown, latest_otp, scanned_token

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

CONSENTS = "/v1/members/me/consents"


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=5)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with webhooks.delivery_client() as client:  # what production delivers with
        yield client


async def enrol(
    client: AsyncTestClient[Any],
    db: psycopg.AsyncConnection[Any],
    url: str,
    device_id: str,
    *,
    phone: str,
    marketing: bool,
    birthday: dt.date | None = None,
) -> tuple[uuid.UUID, dict[str, str]]:
    """Scan, then enrol the phone; returns the member and the cookie header that names it."""
    client.cookies.clear()
    token = await scanned_token(client, url, device_id)
    sent = await client.post("/v1/members/otp", json={"phone": phone, "member_token": token})
    assert sent.status_code == 202, sent.text
    body: dict[str, Any] = {
        "phone": phone,
        "otp": await latest_otp(db),
        "consent_marketing": marketing,
        "consent_location": False,
        "member_token": token,
    }
    if birthday is not None:
        body["profile"] = {"birthday": birthday_on(birthday)}
    enrolled = await client.post("/v1/members/enroll", json=body)
    assert enrolled.status_code == 200, enrolled.text
    client.cookies.clear()  # each call below names its member explicitly
    member = enrolled.json()
    return uuid.UUID(member["member"]["id"]), {"Cookie": f"{MEMBER_COOKIE}={member['member_token']}"}


async def audited(client: AsyncTestClient[Any], tenant: Tenant) -> list[dict[str, Any]]:
    found = await client.get(
        "/v1/audit", params={"action": "member.consents"}, headers=tenant.headers(Role.AUDITOR)
    )
    assert found.status_code == 200, found.text
    entries: list[dict[str, Any]] = found.json()["items"]
    return entries


class TestConsents:
    async def test_a_token_from_before_enrolment_reads_the_member_as_enrolled(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], issued: IssuedBatch
    ) -> None:
        """The page's first scan minted a token saying "anonymous"; after enrolment /me tells the truth."""
        client.cookies.clear()
        before = await scanned_token(client, issued.urls[3], "device-consent-9")
        member, _ = await enrol(
            client, db, issued.urls[4], "device-consent-9", phone="138 0013 8009", marketing=False
        )
        me = (await client.get("/v1/members/me", headers={"Cookie": f"{MEMBER_COOKIE}={before}"})).json()
        assert (me["member_id"], me["enrolled"]) == (str(member), True)

    async def test_grant_withdraw_and_repeat(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Granting stamps a time once (a repeat keeps it), withdrawing clears it; GET /me shows the
        state, the field left out stays, and only real changes reach the audit log."""
        member, cookie = await enrol(
            client, db, issued.urls[0], "device-consent-1", phone="138 0013 8000", marketing=False
        )
        shown = (await client.get("/v1/members/me", headers=cookie)).json()
        assert (shown["member_id"], shown["enrolled"]) == (str(member), True)
        assert (shown["consent_marketing_at"], shown["consent_location_at"]) == (None, None)

        granted = await client.patch(CONSENTS, json={"marketing": True, "location": True}, headers=cookie)
        assert granted.status_code == 200, granted.text
        first = granted.json()
        assert first["consent_marketing_at"] is not None and first["consent_location_at"] is not None
        again = await client.patch(CONSENTS, json={"marketing": True}, headers=cookie)
        assert again.status_code == 200, again.text
        # Idempotent: the first grant's time stays, and nothing new is recorded.
        assert again.json() == first
        assert len(await audited(client, tenant_a)) == 1

        withdrawn = await client.patch(CONSENTS, json={"marketing": False}, headers=cookie)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["consent_marketing_at"] is None
        assert withdrawn.json()["consent_location_at"] == first["consent_location_at"]  # left as it was
        repeat = await client.patch(CONSENTS, json={"marketing": False, "location": None}, headers=cookie)
        assert repeat.json() == withdrawn.json()
        assert (await client.get("/v1/members/me", headers=cookie)).json() == withdrawn.json()
        cur = await db.execute(
            "SELECT consent_marketing_at IS NULL, consent_location_at IS NOT NULL FROM members WHERE id = %s",
            (member,),
        )
        assert await cur.fetchone() == (True, True)

        entries = await audited(client, tenant_a)
        assert [(e["actor"], e["object_id"]) for e in entries] == [(f"member:{member}", str(member))] * 2
        assert entries[-1]["before"]["consent_marketing_at"] is not None
        assert entries[-1]["after"]["consent_marketing_at"] is None

    @pytest.mark.parametrize(
        ("body", "status", "slug"),
        [
            ({"marketing": True, "sms": False}, 422, "validation-error"),
            ({"marketing": "yes"}, 422, "validation-error"),
            ([True], 422, "validation-error"),
            (b'{"marketing": ', 400, "malformed-body"),
        ],
    )
    async def test_a_bad_body_is_a_problem(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        issued: IssuedBatch,
        body: Any,
        status: int,
        slug: str,
    ) -> None:
        """Unknown fields, wrong types and broken JSON are refused as problem+json; nothing changes."""
        member, cookie = await enrol(
            client, db, issued.urls[0], "device-consent-2", phone="138 0013 8000", marketing=True
        )
        if isinstance(body, bytes):
            sent = await client.patch(
                CONSENTS, content=body, headers={**cookie, "content-type": "application/json"}
            )
        else:
            sent = await client.patch(CONSENTS, json=body, headers=cookie)
        assert_problem(sent, status, slug)
        cur = await db.execute(
            "SELECT consent_marketing_at IS NOT NULL FROM members WHERE id = %s", (member,)
        )
        assert await cur.fetchone() == (True,)

    async def test_no_token_or_a_forged_one_is_401_and_an_erased_member_410(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        issued: IssuedBatch,
    ) -> None:
        """Only the member's own token changes its consents; after erasure there is nothing to change."""
        client.cookies.clear()
        assert_problem(await client.patch(CONSENTS, json={"marketing": False}), 401, "invalid-member-token")
        assert_problem(await client.get("/v1/members/me"), 401, "invalid-member-token")
        forged = {"Cookie": f"{MEMBER_COOKIE}=m1.x.y.0.sig"}
        assert_problem(
            await client.patch(CONSENTS, json={"marketing": False}, headers=forged),
            401,
            "invalid-member-token",
        )
        _, cookie = await enrol(
            client, db, issued.urls[0], "device-consent-3", phone="138 0013 8000", marketing=True
        )
        assert (await client.delete("/v1/members/me", headers=cookie)).status_code == 204
        client.cookies.clear()
        gone = await client.patch(CONSENTS, json={"marketing": True}, headers=cookie)
        assert_problem(gone, 410, "member-erased")

    async def test_erasure_leaves_no_device_network_or_place_in_the_scan_log(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        issued: IssuedBatch,
    ) -> None:
        """The scans stay for the brand's figures, but nothing in them leads back to the phone."""
        member, cookie = await enrol(
            client, db, issued.urls[0], "device-erase-1", phone="138 0013 8001", marketing=False
        )
        hangzhou = {"lat": 30.27, "lng": 120.16}
        scanned = await client.post(
            "/v1/scans", json={"code": issued.urls[1], "device_id": "device-erase-1", "location": hangzhou}
        )
        assert scanned.json()["verdict"] == "genuine_first"
        client.cookies.clear()
        other = await client.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-erase-2"})
        assert other.json()["verdict"] == "genuine_repeat"
        assert (await client.delete("/v1/members/me", headers=cookie)).status_code == 204

        cur = await db.execute(
            "SELECT device_id, ip_prefix, lat, lng, city, region FROM scans WHERE member_id = %s", (member,)
        )
        rows = await cur.fetchall()
        assert len(rows) == 2
        assert {r[0] for r in rows} == {rows[0][0]} and rows[0][0].startswith("erased-")
        assert all(r[1:5] == (None, None, None, None) for r in rows)
        assert {r[5] for r in rows} == {None, "CN-ZJ"}  # the province stays, for the brand's reports
        claims = "SELECT first_device_id FROM code_claims WHERE first_member_id = %s"
        cur = await db.execute(claims, (member,))
        assert {r[0] for r in await cur.fetchall()} == {rows[0][0]}
        cur = await db.execute("SELECT count(*) FROM scans WHERE device_id = 'device-erase-2'")
        assert await cur.fetchone() == (1,)  # another scanner's row is untouched


class TestLocation:
    async def test_after_withdrawal_the_log_keeps_no_location_of_the_members_scans(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        issued: IssuedBatch,
    ) -> None:
        """Whatever device or app still sends one: the location, and the place it named, are not kept.
        Given again, locations are kept again. The anonymous member of another device, merged into the
        phone's member by enrolment, counts as that member."""
        member_id, cookie = await enrol(
            client, db, issued.urls[0], "device-location-1", phone="+8613800138111", marketing=False
        )
        hangzhou = {"lat": 30.27, "lng": 120.16, "accuracy_m": 50.0}

        async def scan_located(url: str, device_id: str, headers: dict[str, str]) -> tuple[Any, ...]:
            sent = await client.post(
                "/v1/scans", json={"code": url, "device_id": device_id, "location": hangzhou}, headers=headers
            )
            assert sent.status_code == 200, sent.text
            cur = await db.execute(
                "SELECT member_id, lat::float8, lng::float8, region FROM scans WHERE id = %s",
                (sent.json()["scan_id"],),
            )
            row = await cur.fetchone()
            assert row is not None
            return tuple(row)

        assert (await client.patch(CONSENTS, json={"location": True}, headers=cookie)).status_code == 200
        assert await scan_located(issued.urls[1], "device-location-1", cookie) == (
            member_id,
            30.27,
            120.16,
            "CN-ZJ",
        )
        assert (await client.patch(CONSENTS, json={"location": False}, headers=cookie)).status_code == 200
        assert await scan_located(issued.urls[2], "device-location-1", cookie) == (
            member_id,
            None,
            None,
            None,
        )
        # Another device, enrolled with the same phone: its scans are the phone member's too.
        await forget_resend_cooldown(settings)
        other, other_cookie = await enrol(
            client, db, issued.urls[3], "device-location-2", phone="+8613800138111", marketing=False
        )
        assert other == member_id
        assert await scan_located(issued.urls[4], "device-location-2", other_cookie) == (
            member_id,
            None,
            None,
            None,
        )
        assert (await client.patch(CONSENTS, json={"location": True}, headers=cookie)).status_code == 200
        assert await scan_located(issued.urls[4], "device-location-2", other_cookie) == (
            member_id,
            30.27,
            120.16,
            "CN-ZJ",
        )

    async def test_after_withdrawal_the_scan_checks_leave_the_location_out_of_redis_too(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        issued: IssuedBatch,
    ) -> None:
        """The scan's own anti-fraud checks keep a code's regions and its last place (travel) in Redis:
        after the member withdrew location consent, a location its phone still sends is not put there,
        on this worker at once and on every other after its reload."""
        member_id, cookie = await enrol(
            client, db, issued.urls[0], "device-redis-1", phone="+8613800138112", marketing=False
        )
        hangzhou = {"lat": 30.27, "lng": 120.16, "accuracy_m": 50.0}
        redis = Redis.from_url(settings.redis_url or "")

        async def located_keys() -> int:
            found = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
            return sum(1 for key in found if key.endswith((b":t", b":r")))

        async def scan_located(url: str) -> None:
            sent = await client.post(
                "/v1/scans",
                json={"code": url, "device_id": "device-redis-1", "location": hangzhou},
                headers=cookie,
            )
            assert sent.status_code == 200, sent.text

        given = await client.patch(CONSENTS, json={"location": True}, headers=cookie)
        assert given.status_code == 200, given.text
        try:
            await scan_located(issued.urls[1])
            assert await located_keys() == 2  # the code's region sketch and its last place
            assert (await client.patch(CONSENTS, json={"location": False}, headers=cookie)).status_code == 200
            await scan_located(issued.urls[2])
            assert await located_keys() == 2  # nothing kept for the second code
            # Another worker learns it from the database: loading the withdrawals whole, then the changes.
            async with AsyncConnectionPool(settings.database_url or "", min_size=1, open=False) as pool:
                withdrawals = LocationWithdrawals(pool)
                await withdrawals.poll()
                assert withdrawals.withdrew(member_id)
                again = await client.patch(CONSENTS, json={"location": True}, headers=cookie)
                assert again.status_code == 200, again.text
                await withdrawals.poll()
                assert not withdrawals.withdrew(member_id)
            await scan_located(issued.urls[3])
            assert await located_keys() == 4
        finally:
            await redis.aclose()


class TestTexts:
    async def test_a_pending_text_is_not_sent_after_marketing_consent_is_withdrawn(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        http: httpx.AsyncClient,
    ) -> None:
        """Two consenting members get a birthday text queued; one withdraws before the sender runs: its
        text is cancelled, never sent, while the other's goes out."""
        t0 = ahead()  # a day ahead: the app's own loops (on the real clock) leave these deliveries alone
        today = t0.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).date()  # the default brand calendar
        withdrawing, cookie = await enrol(
            client, db, issued.urls[0], "device-sms-1", phone="138 0013 8000", marketing=True, birthday=today
        )
        await forget_resend_cooldown(settings)
        keeping, _ = await enrol(
            client, db, issued.urls[1], "device-sms-2", phone="139 0013 9000", marketing=True, birthday=today
        )
        await refresh(db, t0)
        pending = """
            SELECT e.member_id, d.status, d.last_error FROM member_event_deliveries d
            JOIN member_events e ON e.id = d.event_id
            WHERE d.channel = 'sms' AND e.type = 'birthday' ORDER BY d.id"""
        cur = await db.execute(pending)
        assert await cur.fetchall() == [(withdrawing, "pending", None), (keeping, "pending", None)]

        withdrawn = await client.patch(CONSENTS, json={"marketing": False}, headers=cookie)
        assert withdrawn.status_code == 200, withdrawn.text

        report = await deliver(db, settings, http, t0)
        assert (report.claimed, report.delivered, report.cancelled) == (2, 1, 1)
        cur = await db.execute(pending)
        assert await cur.fetchall() == [
            (withdrawing, "cancelled", "no phone or no consent"),
            (keeping, "delivered", None),
        ]
        cur = await db.execute(
            "SELECT m.id, o.body FROM sms_outbox o JOIN members m ON m.phone_index = o.phone_index"
            " WHERE o.body LIKE '%%birthday%%'"
        )
        assert [row[0] for row in await cur.fetchall()] == [keeping]
        # Nothing is left for a later run to send, even once the member consents again.
        again = await client.patch(CONSENTS, json={"marketing": True}, headers=cookie)
        assert again.status_code == 200, again.text
        later = await deliver(db, settings, http, t0 + dt.timedelta(hours=1))
        assert later.claimed == 0
