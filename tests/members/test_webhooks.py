"""Member events and webhooks: each trigger fires once, deliveries are signed, retried and never doubled.

Time is driven: the tests run the refresh and the delivery at `t0`, a day ahead of the clock, and later,
so the app's own background loops (on the real clock) never touch what a test drives, except where a
test hands a delivery to them on purpose.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import json
import socket
import ssl
import threading
import uuid
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from campaigns import ledger
from campaigns.members import events, profiles, stats, webhooks
from campaigns.members.enrolment import DevelopmentSms
from campaigns.members.errors import LimitReached
from campaigns.members.phones import MemberVault
from service.app import create_app
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.races import assert_last_place_taken_once
from tests.scans.test_members_api import PHONE, latest_otp, scanned_token

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


class Receiver:
    """A real HTTP server on a local port that records every request; `down()` closes the port."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, dict[str, str], bytes]] = []
        self.status = 200
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/onecode"

    def up(self, status: int = 200) -> None:
        self.status = status
        if self._server is not None:
            return
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((receiver.status, headers, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for status, headers, body in self.requests if status == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.down()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with webhooks.delivery_client() as client:  # what production delivers with
        yield client


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


def ahead() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)


async def refresh(db: psycopg.AsyncConnection[Any], at: dt.datetime, *, full: bool = True) -> None:
    async with db.transaction():
        report = await stats.refresh(db, now=at, full=full)
    assert report.ran


async def deliver(
    conn: psycopg.AsyncConnection[Any], settings: Settings, http: httpx.AsyncClient, at: dt.datetime
) -> webhooks.DeliveryReport:
    return await webhooks.deliver_due(
        conn,
        http,
        master_keys=settings.all_master_keys,
        vault=MemberVault(settings.all_master_keys),
        sms=DevelopmentSms(),
        now=at,
        allow_private=settings.webhook_private_targets,
    )


async def next_due(db: psycopg.AsyncConnection[Any]) -> dt.datetime | None:
    cur = await db.execute(
        "SELECT min(next_attempt_at) FROM member_event_deliveries WHERE status = 'pending'"
    )
    row = await cur.fetchone()
    assert row is not None
    found: dt.datetime | None = row[0]
    return found


async def scan_member(client: AsyncTestClient[Any], url: str, device_id: str) -> uuid.UUID:
    client.cookies.clear()
    response = await client.post("/v1/scans", json={"code": url, "device_id": device_id})
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["member"]["id"])


async def create_webhook(client: AsyncTestClient[Any], tenant: Tenant, **body: Any) -> dict[str, Any]:
    created = await client.post("/v1/webhooks", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def assert_signed(secret: str, headers: dict[str, str], body: bytes) -> None:
    signed = headers["x-onecode-timestamp"].encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-onecode-signature"], expected)
    event = json.loads(body)
    assert headers["x-onecode-event-id"] == event["id"]
    assert headers["x-onecode-event-type"] == event["type"]


def birthday_on(day: dt.date) -> str:
    # 28 years back is a leap year whenever this one is: a 29 February stays a valid date.
    return day.replace(year=day.year - 28).isoformat()


async def member_with_every_fact(
    client: AsyncTestClient[Any],
    db: psycopg.AsyncConnection[Any],
    settings: Settings,
    tenant_a: Tenant,
    issued: IssuedBatch,
    t0: dt.datetime,
) -> tuple[uuid.UUID, dt.datetime]:
    """A member with a first scan, a birthday at t0, points lapsing 10 days on (enough for a tier), and
    a second one, with the same birthday, erased: returns the first and its points' expiry."""
    admin = tenant_a.headers()
    ladder = {"tiers": [{"name": "Base"}, {"name": "Silver", "min_points_earned": 100}]}
    assert (await client.put("/v1/member-tiers", json=ladder, headers=admin)).status_code == 200
    member = await scan_member(client, issued.urls[0], "device-events-1")
    erased = await scan_member(client, issued.urls[1], "device-events-2")
    cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
    for who in (member, erased):
        patched = await client.patch(
            f"/v1/members/{who}", json={"birthday": birthday_on(t0.date())}, headers=cs
        )
        assert patched.status_code == 200, patched.text
    await profiles.erase(db, MemberVault(settings.all_master_keys), tenant_a.brand_id, erased)
    cur = await db.execute("SELECT id, birthday_md FROM members WHERE id = ANY(%s)", ([member, erased],))
    assert dict(await cur.fetchall()) == {member: t0.month * 100 + t0.day, erased: None}
    expires_at = t0 + dt.timedelta(days=10)
    await ledger.earn(
        db,
        ledger.Member(tenant_a.brand_id, member),
        150,
        reason="test",
        source="test",
        now=dt.datetime.now(dt.UTC),
        expires_at=expires_at,
    )
    return member, expires_at


async def refresh_repeatedly(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant, t0: dt.datetime
) -> None:
    """Every refresh twice; the member falls dormant at t0 + 1 h and comes back at t0 + 2 h."""
    admin = tenant_a.headers()
    await refresh(db, t0)
    await refresh(db, t0)  # the same refresh again: nothing new
    await refresh(db, t0 + dt.timedelta(minutes=1), full=False)
    # Lifecycle: tighter thresholds make the member dormant; the defaults again bring it back.
    tight = {"new_days": 1, "active_days": 1, "churn_days": 365}
    assert (await client.put("/v1/member-settings", json=tight, headers=admin)).status_code == 200
    await refresh(db, t0 + dt.timedelta(hours=1))
    await refresh(db, t0 + dt.timedelta(hours=1, minutes=1))
    assert (await client.put("/v1/member-settings", json={}, headers=admin)).status_code == 200
    await refresh(db, t0 + dt.timedelta(hours=2))
    await refresh(db, t0 + dt.timedelta(hours=2, minutes=1))


class TestTriggers:
    async def test_each_trigger_fires_once_however_often_the_refresh_runs(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """first_scan, tier_change, birthday, points_expiring, dormancy_reached, reactivated: one each."""
        admin = tenant_a.headers()
        t0 = ahead()
        saved = await client.put("/v1/member-event-settings", json={"time_zone": "UTC"}, headers=admin)
        assert saved.json() == {"expiry_notice_days": 30, "time_zone": "UTC"}
        member, expires_at = await member_with_every_fact(client, db, settings, tenant_a, issued, t0)
        every = await create_webhook(client, tenant_a, url="https://hooks.example.com/all")
        tiers_only = await create_webhook(
            client, tenant_a, url="https://hooks.example.com/tiers", event_types=["tier_change"]
        )

        await refresh_repeatedly(client, db, tenant_a, t0)

        cur = await db.execute("SELECT member_id, type, fact_key, id, data FROM member_events ORDER BY seq")
        rows = await cur.fetchall()
        assert sorted(r[1] for r in rows) == sorted(events.EVENT_TYPES)
        assert {r[0] for r in rows} == {member}  # the erased member gets nothing
        by_type = {r[1]: r for r in rows}
        for _, event_type, fact_key, event_id, _ in rows:
            assert event_id == events.event_id(tenant_a.brand_id, event_type, member, fact_key)
        assert by_type["birthday"][2] == str(t0.year)
        expiring = by_type["points_expiring"][4]
        assert (expiring["points"], expiring["expires_on"]) == (150, expires_at.date().isoformat())
        assert dt.datetime.fromisoformat(expiring["expires_at"]) == expires_at
        assert by_type["points_expiring"][2] == expires_at.date().isoformat()
        assert by_type["tier_change"][4] == {
            "from_rank": 0,
            "to_rank": 1,
            "from_tier": "Base",
            "to_tier": "Silver",
        }
        assert (by_type["dormancy_reached"][4]["from"], by_type["dormancy_reached"][4]["to"]) == (
            "new",
            "dormant",
        )
        assert (by_type["reactivated"][4]["from"], by_type["reactivated"][4]["to"]) == ("dormant", "new")

        # One delivery per event and subscribed webhook, none by SMS (the member has no phone).
        cur = await db.execute(
            "SELECT webhook_id, channel, count(*) FROM member_event_deliveries GROUP BY 1, 2 ORDER BY 3"
        )
        assert await cur.fetchall() == [
            (uuid.UUID(tiers_only["id"]), "webhook", 1),
            (uuid.UUID(every["id"]), "webhook", 6),
        ]
        # The outbox over HTTP, brand-scoped and paged.
        readers = tenant_a.headers(Role.MARKETER)
        listed = (await client.get("/v1/member-events", params={"limit": 4}, headers=readers)).json()
        assert len(listed["items"]) == 4
        rest = await client.get("/v1/member-events", params={"after": listed["next_cursor"]}, headers=readers)
        assert len(rest.json()["items"]) == 2
        assert rest.json()["next_cursor"] is None
        birthdays = await client.get("/v1/member-events", params={"type": "birthday"}, headers=readers)
        assert [e["member_id"] for e in birthdays.json()["items"]] == [str(member)]
        other = await client.get("/v1/member-events", headers=tenant_b.headers(Role.MARKETER))
        assert other.json()["items"] == []

    async def test_events_are_written_fanned_out_and_unmarked_ones_still_go_out(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """A refresh writes its events already marked as fanned out, with their deliveries, instead of
        rewriting every event afterwards (in a promotion, every new member's first scan is one); an
        event left unmarked (by an earlier version) is still fanned out, once."""
        hook = await create_webhook(client, tenant_a, url="https://hooks.example.com/all")
        client.cookies.clear()
        answer = await client.post("/v1/scans", json={"code": issued.urls[0], "device_id": "device-outbox-1"})
        member = uuid.UUID(answer.json()["member"]["id"])
        await db.execute(
            "INSERT INTO member_events (id, brand_id, member_id, type, fact_key, occurred_at, created_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'birthday', '1999', now(), now())",
            (tenant_a.brand_id, member),
        )
        async with db.transaction():
            await stats.refresh(db, now=dt.datetime.now(dt.UTC), full=True)
            cur = await db.execute(
                "SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'member_events'"
            )
            assert await cur.fetchone() == (1,)  # the unmarked one only
        cur = await db.execute(
            "SELECT e.type, count(d.*) FROM member_events e"
            " LEFT JOIN member_event_deliveries d ON d.event_id = e.id AND d.webhook_id = %s"
            " WHERE e.fanned_out_at IS NOT NULL GROUP BY 1 ORDER BY 1",
            (uuid.UUID(hook["id"]),),
        )
        assert await cur.fetchall() == [("birthday", 1), ("first_scan", 1)]
        await refresh(db, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), full=False)
        cur = await db.execute("SELECT count(*) FROM member_event_deliveries")
        assert await cur.fetchone() == (2,)

    async def test_event_settings_are_validated(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """An unknown time zone or an out-of-range notice period is refused; marketers may only read."""
        admin = tenant_a.headers()
        bad_zone = await client.put(
            "/v1/member-event-settings", json={"time_zone": "Mars/Olympus"}, headers=admin
        )
        assert_problem(bad_zone, 422, "validation-error")
        bad_days = await client.put(
            "/v1/member-event-settings", json={"expiry_notice_days": 0}, headers=admin
        )
        assert bad_days.status_code in {400, 422}
        marketer = tenant_a.headers(Role.MARKETER)
        denied = await client.put(
            "/v1/member-event-settings", json={"expiry_notice_days": 7}, headers=marketer
        )
        assert denied.status_code == 403
        assert (await client.get("/v1/member-event-settings", headers=marketer)).json() == {
            "expiry_notice_days": 30,
            "time_zone": "Asia/Shanghai",
        }


class TestEventIds:
    @hypothesis_settings(
        max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        brand_id=st.uuids(),
        member_id=st.uuids(),
        event_type=st.sampled_from(sorted(events.EVENT_TYPES)),
        fact_key=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
    )
    async def test_sql_and_python_derive_the_same_id(
        self,
        db: psycopg.AsyncConnection[Any],
        brand_id: uuid.UUID,
        member_id: uuid.UUID,
        event_type: str,
        fact_key: str,
    ) -> None:
        """Receivers derive an event's id with `events.event_id` (uuid3); the database's must agree."""
        cur = await db.execute(
            "SELECT member_event_id(%s, %s, %s, %s)", (brand_id, event_type, member_id, fact_key)
        )
        assert await cur.fetchone() == (events.event_id(brand_id, event_type, member_id, fact_key),)

    async def test_the_id_is_computed_inside_the_calling_statement(
        self, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Inlined, not called through the SQL function executor (7 us a call: a promotion's refresh
        writes an event for every new member)."""
        cur = await db.execute(
            "EXPLAIN (VERBOSE) SELECT member_event_id(b, 'first_scan', m, '')"
            " FROM (VALUES (gen_random_uuid(), gen_random_uuid())) AS v(b, m)"
        )
        plan = "\n".join(row[0] for row in await cur.fetchall())
        assert "member_event_id" not in plan and "md5" in plan, plan


class TestDelivery:
    async def test_a_receiver_down_for_a_minute_gets_every_event_once(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        receiver: Receiver,
        http: httpx.AsyncClient,
    ) -> None:
        """Refused for 20 s, then 503 until 70 s: retried with growing waits, then each event arrives once."""
        t0 = ahead()
        hook = await create_webhook(client, tenant_a, url=receiver.url, description="CRM")
        for n in range(3):
            await scan_member(client, issued.urls[n], f"device-down-{n}")
        await refresh(db, t0)
        cur = await db.execute("SELECT id FROM member_events")
        event_ids = {str(r[0]) for r in await cur.fetchall()}
        assert len(event_ids) == 3

        at = await next_due(db)
        while at is not None and at < t0 + dt.timedelta(seconds=70):
            if at >= t0 + dt.timedelta(seconds=20):
                receiver.up(status=503)  # listening again, but failing
            report = await deliver(db, settings, http, at)
            assert report.delivered == 0
            at = await next_due(db)
        assert receiver.requests  # the 503 phase was reached
        receiver.up(status=200)
        # Two workers at once, with everything due: each delivery is claimed by one of them.
        later = t0 + dt.timedelta(hours=1)
        async with await psycopg.AsyncConnection.connect(
            settings.database_url or "", autocommit=True
        ) as other:
            reports = await asyncio.gather(
                deliver(db, settings, http, later), deliver(other, settings, http, later)
            )
        assert sum(r.delivered for r in reports) == 3
        assert (await deliver(db, settings, http, later + dt.timedelta(days=2))).claimed == 0

        accepted = receiver.accepted()
        assert sorted(json.loads(body)["id"] for _, body in accepted) == sorted(event_ids)
        for headers, body in accepted:
            assert_signed(hook["secret"], headers, body)
            assert json.loads(body)["brand_id"] == str(tenant_a.brand_id)
        # The delivery log: every attempt, the failures first, at growing intervals.
        log = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=tenant_a.headers())
        deliveries = log.json()["items"]
        assert {d["status"] for d in deliveries} == {"delivered"}
        # Refused at about 0, 5 and 15 s; 503 from 20 s (at least once); then delivered.
        assert all(d["attempts"] >= 5 and d["last_status_code"] == 200 for d in deliveries)
        detail = await client.get(
            f"/v1/webhooks/{hook['id']}/deliveries/{deliveries[0]['id']}", headers=tenant_a.headers()
        )
        attempts = detail.json()["attempts"]
        assert len(attempts) == deliveries[0]["attempts"]
        errors = [a["error"] for a in attempts]
        assert errors[0].startswith("ConnectError") and "HTTP 503" in errors and errors[-1] is None
        times = [dt.datetime.fromisoformat(a["attempted_at"]) for a in attempts[:-1]]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 4 and gaps == sorted(gaps)
        assert times[-1] - times[0] >= dt.timedelta(seconds=20)
        failed_only = await client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "failed"}, headers=tenant_a.headers()
        )
        assert failed_only.json()["items"] == []

    async def test_a_dead_receiver_is_given_up_after_a_day_and_can_be_retried(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        receiver: Receiver,
        http: httpx.AsyncClient,
    ) -> None:
        """Backoff caps at an hour; 24 h after the event the delivery fails for good, until staff retry it."""
        t0 = ahead()
        hook = await create_webhook(client, tenant_a, url=receiver.url)
        await scan_member(client, issued.urls[0], "device-dead-1")
        await refresh(db, t0)
        rounds = 0
        while (at := await next_due(db)) is not None:
            await deliver(db, settings, http, at)
            rounds += 1
            assert rounds < 60
        cur = await db.execute(
            "SELECT id, status, attempts, last_attempt_at, give_up_at, created_at"
            " FROM member_event_deliveries"
        )
        [(delivery_id, status, attempts, last_attempt_at, give_up_at, created_at)] = await cur.fetchall()
        assert status == "failed"
        assert 25 <= attempts <= 40
        assert last_attempt_at <= give_up_at == created_at + dt.timedelta(hours=24)
        cur = await db.execute(
            "SELECT attempted_at FROM member_event_attempts WHERE delivery_id = %s ORDER BY id",
            (delivery_id,),
        )
        times = [r[0] for r in await cur.fetchall()]
        assert max(b - a for a, b in itertools.pairwise(times)) <= dt.timedelta(hours=1.2)
        assert (await deliver(db, settings, http, t0 + dt.timedelta(days=3))).claimed == 0
        assert receiver.requests == []

        # A staff retry: due now, so the app's own delivery loop (real clock) sends it.
        receiver.up()
        path = f"/v1/webhooks/{hook['id']}/deliveries/{delivery_id}"
        retried = await client.post(f"{path}/retry", headers=tenant_a.headers())
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"
        for _ in range(100):
            state = (await client.get(path, headers=tenant_a.headers())).json()["delivery"]["status"]
            if state == "delivered":
                break
            await asyncio.sleep(0.1)
        assert state == "delivered"
        assert len(receiver.accepted()) == 1
        assert_signed(hook["secret"], *receiver.accepted()[0])
        again = await client.post(f"{path}/retry", headers=tenant_a.headers())
        assert_problem(again, 409, "delivery-not-retryable")
        audit = await client.get(
            "/v1/audit", params={"action": "webhook.delivery_retry"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert len(audit.json()["items"]) == 1

    async def test_birthday_and_expiring_points_are_texted_to_consenting_members(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        http: httpx.AsyncClient,
    ) -> None:
        """An enrolled member with marketing consent gets the texts; an anonymous one only the events."""
        t0 = ahead()
        today = t0.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).date()  # the default brand calendar
        token = await scanned_token(client, issued.urls[0], "device-sms-1")
        sent = await client.post("/v1/members/otp", json={"phone": PHONE, "member_token": token})
        assert sent.status_code == 202, sent.text
        enrolled = await client.post(
            "/v1/members/enroll",
            json={
                "phone": PHONE,
                "otp": await latest_otp(db),
                "consent_marketing": True,
                "consent_location": False,
                "profile": {"birthday": birthday_on(today)},
                "member_token": token,
            },
        )
        assert enrolled.status_code == 200, enrolled.text
        texted = uuid.UUID(enrolled.json()["member"]["id"])
        anonymous = await scan_member(client, issued.urls[1], "device-sms-2")
        patched = await client.patch(
            f"/v1/members/{anonymous}",
            json={"birthday": birthday_on(today)},
            headers=tenant_a.headers(Role.CUSTOMER_SERVICE),
        )
        assert patched.status_code == 200, patched.text
        cur = await db.execute("SELECT birthday_md FROM members WHERE id = %s", (texted,))
        assert await cur.fetchone() == (today.month * 100 + today.day,)
        expires_at = t0 + dt.timedelta(days=5)
        await ledger.earn(
            db,
            ledger.Member(tenant_a.brand_id, texted),
            50,
            reason="test",
            source="test",
            now=dt.datetime.now(dt.UTC),
            expires_at=expires_at,
        )
        await refresh(db, t0)
        cur = await db.execute(
            "SELECT e.type FROM member_event_deliveries d JOIN member_events e ON e.id = d.event_id"
            " WHERE d.channel = 'sms' AND e.member_id = %s ORDER BY 1",
            (texted,),
        )
        assert await cur.fetchall() == [("birthday",), ("points_expiring",)]
        cur = await db.execute(
            "SELECT count(*) FROM member_event_deliveries d JOIN member_events e ON e.id = d.event_id"
            " WHERE e.member_id = %s",
            (anonymous,),
        )
        assert await cur.fetchone() == (0,)  # no webhook, no phone: nothing to deliver

        report = await deliver(db, settings, http, t0)
        assert (report.claimed, report.delivered) == (2, 2)
        cur = await db.execute(
            "SELECT o.body FROM sms_outbox o JOIN members m ON m.phone_index = o.phone_index"
            " WHERE m.id = %s AND o.body NOT LIKE '%%verification code%%' ORDER BY o.id",
            (texted,),
        )
        local_expiry = expires_at.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).date()
        assert sorted(r[0] for r in await cur.fetchall()) == [
            f"Brand-A: 50 of your points expire on {local_expiry.isoformat()}. Use them before then.",
            "Brand-A: happy birthday! Thank you for being one of our members.",
        ]
        cur = await db.execute("SELECT count(*) FROM member_events WHERE member_id = %s", (anonymous,))
        assert await cur.fetchone() == (2,)  # first_scan and birthday


class TestWebhookAdmin:
    async def test_brand_admins_manage_their_own_webhooks_only(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """The secret shows once; bad URLs are 422; another brand's webhook is 404; deletion is audited."""
        admin = tenant_a.headers()
        created = await create_webhook(
            client,
            tenant_a,
            url="https://crm.example.com/onecode?token=abc",
            event_types=["birthday", "birthday"],
        )
        assert created["secret"].startswith("whsec_") and created["event_types"] == ["birthday"]
        listed = (await client.get("/v1/webhooks", headers=admin)).json()["items"]
        assert [w["id"] for w in listed] == [created["id"]]
        assert "secret" not in listed[0]
        cur = await db.execute("SELECT secret_sealed FROM webhooks")
        [(sealed,)] = await cur.fetchall()
        assert created["secret"].encode() not in bytes(sealed)
        for url in (
            "ftp://crm.example.com/x",
            "https://user:pass@crm.example.com/x",
            "https:///no-host-here",
            "https://crm.example.com/a b",
            "https://crm.example.com:99999/x",
            "https://crm.example.com:abc/x",
            "https://[zz]/x",
        ):
            refused = await client.post("/v1/webhooks", json={"url": url}, headers=admin)
            assert_problem(refused, 422, "validation-error")
        unknown_type = await client.post(
            "/v1/webhooks",
            json={"url": "https://crm.example.com/x", "event_types": ["birthdays"]},
            headers=admin,
        )
        assert unknown_type.status_code in {400, 422}
        marketer = await client.post(
            "/v1/webhooks", json={"url": "https://crm.example.com/x"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert marketer.status_code == 403

        path = f"/v1/webhooks/{created['id']}"
        assert (await client.get("/v1/webhooks", headers=tenant_b.headers())).json()["items"] == []
        assert (await client.delete(path, headers=tenant_b.headers())).status_code == 404
        assert (await client.get(f"{path}/deliveries", headers=tenant_b.headers())).status_code == 404
        assert (await client.delete(path, headers=admin)).status_code == 204
        assert (await client.delete(path, headers=admin)).status_code == 404
        assert (await client.get("/v1/webhooks", headers=admin)).json()["items"] == []
        audit = await client.get(
            "/v1/audit", params={"object_type": "webhook"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert sorted(e["action"] for e in audit.json()["items"]) == ["webhook.create", "webhook.delete"]

        for n in range(webhooks.MAX_WEBHOOKS):
            await create_webhook(client, tenant_a, url=f"https://crm.example.com/{n}")
        one_more = await client.post("/v1/webhooks", json={"url": "https://crm.example.com/x"}, headers=admin)
        assert assert_problem(one_more, 409, "limit-reached")["detail"].startswith("a brand has at most 20")

    async def test_deleting_a_webhook_cancels_what_it_had_pending(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """Nothing more goes to a deleted webhook; its log stays in the database."""
        hook = await create_webhook(client, tenant_a, url="https://crm.example.com/onecode")
        await scan_member(client, issued.urls[0], "device-cancel-1")
        await refresh(db, ahead())
        assert (
            await client.delete(f"/v1/webhooks/{hook['id']}", headers=tenant_a.headers())
        ).status_code == 204
        cur = await db.execute("SELECT status, last_error FROM member_event_deliveries")
        assert await cur.fetchall() == [("cancelled", "webhook deleted")]


class TestPrivateTargets:
    async def test_webhooks_never_reach_into_the_operators_network(
        self, db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant
    ) -> None:
        """In production (the default) a webhook to a loopback, private or unresolvable host is refused."""
        public_only = msgspec.structs.replace(settings, webhook_private_targets=False)
        async with AsyncTestClient(app=create_app(public_only)) as client:
            for url in (
                "http://127.0.0.1:8080/hook",
                "http://10.1.2.3/hook",
                "http://169.254.169.254/latest/meta-data",
                "http://[::1]/hook",
                "https://no-such-host.invalid/hook",
            ):
                refused = await client.post(
                    "/v1/webhooks", json={"url": url}, headers=tenant_a.headers(Role.BRAND_ADMIN)
                )
                assert refused.status_code == 422, (url, refused.text)
                assert refused.json()["errors"][0]["field"] == "url"
        assert await webhooks.private_target("http://localhost/hook") is not None


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """The running loop's resolver answers `names` with their addresses (in order), others as before;
    returns the list of the names looked up, for a test to count."""
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    looked_up: list[str] = []

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            looked_up.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in names[host]]
        return await real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return looked_up


class TestPinnedAddress:
    def test_the_request_keeps_its_host_and_server_name_at_the_checked_address(self) -> None:
        """The URL's host becomes the checked address; the Host header and the TLS server name (which
        the certificate is verified against) stay the webhook's own."""
        assert webhooks.pinned("https://hooks.example.com/a/b?c=1", "93.184.216.34") == (
            "https://93.184.216.34/a/b?c=1",
            "hooks.example.com",
            "hooks.example.com",
        )
        assert webhooks.pinned("http://Hooks.Example.com:8080/x", "2606:2800:220:1::1") == (
            "http://[2606:2800:220:1::1]:8080/x",
            "hooks.example.com:8080",
            "hooks.example.com",
        )

    async def test_the_name_is_resolved_once_and_the_request_goes_where_it_was_checked(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        receiver: Receiver,
        http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """DNS rebinding: a name that answers the check with one address and the connection with another
        must not get the request to the second. The name is looked up once per delivery, by the check,
        and the request is sent to the address that lookup gave (here the receiver's, under a name only
        this test's resolver knows), with the webhook's own Host header."""
        looked_up = fake_dns(monkeypatch, {"hooks.onecode.test": ["127.0.0.1"]})
        receiver.up()
        hook = await create_webhook(
            client, tenant_a, url=f"http://hooks.onecode.test:{receiver.port}/hooks/onecode"
        )
        await scan_member(client, issued.urls[0], "device-pinned-0")
        t0 = ahead()
        await refresh(db, t0)
        report = await deliver(db, settings, http, t0 + dt.timedelta(minutes=1))
        assert report.delivered == 1, report
        assert looked_up == ["hooks.onecode.test"]
        [(headers, body)] = receiver.accepted()
        assert headers["host"] == f"hooks.onecode.test:{receiver.port}"
        assert_signed(hook["secret"], headers, body)

    async def test_an_address_that_refuses_the_connection_gives_way_to_the_next(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        receiver: Receiver,
        http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A name with several addresses (IPv6 and IPv4, or several hosts) is delivered to at the first
        that takes the connection, once: nothing listens on 127.0.0.2 at the receiver's port (it is bound
        to 127.0.0.1), so that address refuses and the next one, listed twice, is called once."""
        fake_dns(monkeypatch, {"multi.onecode.test": ["127.0.0.2", "127.0.0.1", "127.0.0.1"]})
        receiver.up()
        await create_webhook(client, tenant_a, url=f"http://multi.onecode.test:{receiver.port}/hooks/onecode")
        await scan_member(client, issued.urls[0], "device-multi-0")
        t0 = ahead()
        await refresh(db, t0)
        report = await deliver(db, settings, http, t0 + dt.timedelta(minutes=1))
        assert report.delivered == 1, report
        [(headers, _)] = receiver.accepted()
        assert headers["host"] == f"multi.onecode.test:{receiver.port}"

    async def test_when_no_address_takes_the_connection_the_delivery_is_retried_later(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        receiver: Receiver,
        http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        fake_dns(monkeypatch, {"dead.onecode.test": ["127.0.0.2", "127.0.0.3"]})
        receiver.up()
        await create_webhook(client, tenant_a, url=f"http://dead.onecode.test:{receiver.port}/hooks/onecode")
        await scan_member(client, issued.urls[0], "device-dead-0")
        t0 = ahead()
        await refresh(db, t0)
        report = await deliver(db, settings, http, t0 + dt.timedelta(minutes=1))
        assert (report.delivered, report.retrying) == (0, 1), report
        assert receiver.accepted() == []
        [error] = [
            row[0]
            for row in await (
                await db.execute("SELECT last_error FROM member_event_deliveries WHERE channel = 'webhook'")
            ).fetchall()
        ]
        assert "127.0.0.3" in error, error

    async def test_a_public_name_is_called_at_the_address_the_check_approved(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """In production (private targets refused) the check approves the name's public address, and the
        HTTP client is handed that address, not the name it could resolve again to somewhere else. The
        HTTP client here is httpx's MockTransport: no request may leave this machine for a public address."""
        fake_dns(monkeypatch, {"crm.example.com": ["93.184.216.34"]})
        sent: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return httpx.Response(200)

        public_only = msgspec.structs.replace(settings, webhook_private_targets=False)
        # Made in this test's event loop, where the resolver above answers (the app runs in another).
        async with db.transaction():
            await webhooks.create_webhook(
                db,
                tenant_a.brand_id,
                webhooks.WebhookIn(url="https://crm.example.com/hooks/onecode"),
                master_key=settings.master_key,
                actor="test",
            )
        await scan_member(client, issued.urls[0], "device-public-0")
        t0 = ahead()
        await refresh(db, t0)
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
            report = await deliver(db, public_only, mocked, t0 + dt.timedelta(minutes=1))
        assert report.delivered == 1, report
        [request] = sent
        assert str(request.url) == "https://93.184.216.34/hooks/onecode"
        assert request.headers["host"] == "crm.example.com"
        assert request.extensions["sni_hostname"] == "crm.example.com"

    async def test_each_delivery_checks_its_own_certificate(self, tmp_path: Path) -> None:
        """Two webhooks at one address (shared hosting): a connection kept from the first would carry the
        second's request over a TLS session checked for the first one's name. The delivery client keeps
        none, so the second is refused when the server's certificate is not for its name."""
        ca_key, ca = _certificate("test ca", is_ca=True)
        server_key, server = _certificate("a.test", issuer=(ca_key, ca))
        (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "server.pem").write_bytes(
            server.public_bytes(serialization.Encoding.PEM)
            + server_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        seen: list[str | None] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open, as real receivers do

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                seen.append(self.headers.get("host"))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                del args

        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(tmp_path / "server.pem")
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            async with webhooks.delivery_client(verify=trusted) as http:
                outcomes: list[int | str] = []
                for name in ("a.test", "b.test"):
                    url, host, server_name = webhooks.pinned(f"https://{name}:{port}/hook", "127.0.0.1")
                    try:
                        sent = await http.post(
                            url,
                            content=b"{}",
                            headers={"host": host},
                            extensions={"sni_hostname": server_name},
                        )
                    except httpx.ConnectError as exc:
                        outcomes.append(str(exc))
                    else:
                        outcomes.append(sent.status_code)
            assert outcomes[0] == 200
            assert "hostname mismatch" in str(outcomes[1]).lower(), outcomes
            assert seen == [f"a.test:{port}"]
        finally:
            httpd.shutdown()
            httpd.server_close()

    def test_an_internationalised_name_goes_out_in_its_ascii_form(self) -> None:
        assert webhooks.pinned("https://bücher.example/hook", "93.184.216.34") == (
            "https://93.184.216.34/hook",
            "xn--bcher-kva.example",
            "xn--bcher-kva.example",
        )


Signer = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _certificate(name: str, *, is_ca: bool = False, issuer: Signer | None = None) -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return key, builder.sign(signer, hashes.SHA256())


async def test_two_creations_at_the_cap_cannot_both_pass_it(settings: Settings, tenant_a: Tenant) -> None:
    """One place left: a creation not yet committed, and another at the same moment. The second waits
    for the first and is refused (before, both counted the same 19 and the brand ended with 21)."""
    url = settings.database_url or ""

    async def create(conn: psycopg.AsyncConnection[Any], n: int) -> webhooks.WebhookCreated:
        data = webhooks.WebhookIn(url=f"https://crm.example.com/{n}")
        return await webhooks.create_webhook(
            conn, tenant_a.brand_id, data, master_key=settings.master_key, actor="test", allow_private=True
        )

    async with await psycopg.AsyncConnection.connect(url) as setup:
        for n in range(webhooks.MAX_WEBHOOKS - 1):
            await create(setup, n)
    await assert_last_place_taken_once(url, create, LimitReached)
    async with await psycopg.AsyncConnection.connect(url) as check:
        cur = await check.execute("SELECT count(*) FROM webhooks WHERE brand_id = %s", (tenant_a.brand_id,))
        assert await cur.fetchone() == (webhooks.MAX_WEBHOOKS,)
