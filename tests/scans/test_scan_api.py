"""POST /v1/scans over HTTP: verdicts, dedup under concurrency, Redis loss, idempotency, bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
import redis.asyncio
from litestar.exceptions import HTTPException
from litestar.testing import AsyncTestClient

from campaigns import ledger
from service.routes.scans import read_scan_body
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id)


def device() -> str:
    return f"dev-{uuid.uuid4().hex[:12]}"


async def scan(client: AsyncTestClient[Any], code: str, device_id: str, **extra: Any) -> Any:
    headers = extra.pop("headers", {})
    return await client.post(
        "/v1/scans", json={"code": code, "device_id": device_id, **extra}, headers=headers
    )


class TestVerdicts:
    async def test_first_then_repeat(self, client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
        """The first scan of a code is genuine_first, the next genuine_repeat, with facts and counts."""
        first = await scan(client, issued.urls[0], device())
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["verdict"] == "genuine_first", body
        assert body["scan_count"] == 1
        assert body["product"]["gtin"] == "09506000134352"
        assert body["product"]["facts"]["origin"] == "Qingdao"
        assert body["batch"]["lot"] == "L2026-11"
        assert body["member"]["enrolled"] is False
        assert body["member_token"]
        assert body["reward"] is None
        assert "oc_member" in first.headers.get("set-cookie", "")
        assert first.headers["content-type"] == "application/json"
        assert first.headers["x-request-id"]
        again = (await scan(client, issued.urls[0], device())).json()
        assert again["verdict"] == "genuine_repeat"
        assert again["scan_count"] == 2
        assert again["first_scanned_at"] == body["first_scanned_at"]

    async def test_member_cookie_carries_the_member(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """The cookie a first scan sets names the member on later scans, from any device id."""
        first = await scan(client, issued.urls[2], device())
        member_id = first.json()["member"]["id"]
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        token = cookie.split(";")[0].split("=", 1)[1]
        client.cookies.clear()
        later = await scan(
            client, issued.urls[3], device(), headers={"Cookie": f"other=1; oc_member={token}"}
        )
        assert later.json()["member"]["id"] == member_id
        # The client already holds the token: no need to send it again.
        assert "set-cookie" not in later.headers
        forged = await scan(client, issued.urls[4], device(), headers={"Cookie": "oc_member=v1.forged"})
        assert forged.json()["member"]["id"] != member_id

    async def test_the_answer_shows_the_members_points(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """`member.points_balance` is the ledger's balance (unexpired lots), read in the scan's statement."""
        phone = device()
        first = (await scan(client, issued.urls[5], phone)).json()
        assert first["member"]["points_balance"] == 0
        member = ledger.Member(issued.brand_id, uuid.UUID(first["member"]["id"]))
        now = dt.datetime.now(dt.UTC)
        await ledger.earn(db, member, 120, reason="test", source="test", now=now)
        await ledger.earn(
            db, member, 7, reason="test", source="test", now=now - dt.timedelta(days=2),
            expires_at=now - dt.timedelta(days=1),
        )  # fmt: skip
        await db.commit()
        again = (await scan(client, issued.urls[6], phone)).json()
        assert again["member"]["points_balance"] == 120

    async def test_phone_quirks_still_verify(self, client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
        """Lowercased, uppercased-scheme and trailing-slash forms of a printed URL verify."""
        url = issued.urls[1]
        for variant in (url.lower(), url.replace("https://", "HTTPS://"), url + "/"):
            assert (await scan(client, variant, device())).json()["verdict"] in {
                "genuine_first",
                "genuine_repeat",
            }

    @pytest.mark.parametrize(
        ("mutate", "reason"),
        [
            (lambda u: u[:-1] + ("A" if u[-1] != "A" else "B"), "bad_tag"),
            (lambda u: u[:-3], "malformed"),
            (lambda _u: "https://evil.example/01/09506000134352/21/AAAAAAAAAAAAAAAAAAAA", "bad_tag"),
            (lambda _u: "hello world", "malformed"),
            (lambda u: u.replace("09506000134352", "00012345600012"), "unknown_product"),
        ],
    )
    async def test_forgeries_are_counterfeit(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, mutate: Any, reason: str
    ) -> None:
        """Mutated or invented codes are counterfeit, with the reason and no product facts."""
        body = (await scan(client, mutate(issued.urls[2]), device())).json()
        assert body["verdict"] == "counterfeit"
        assert body["reason"] == reason
        assert body["product"] is None and body["batch"] is None

    async def test_voided_batch_codes_are_counterfeit(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """Voiding a batch kills all its codes with the distinct reason `voided`."""
        voided = await client.post(f"/v1/batches/{issued.batch.id}/void", headers=tenant_a.headers())
        assert voided.status_code == 200, voided.text
        body = (await scan(client, issued.urls[3], device())).json()
        assert (body["verdict"], body["reason"]) == ("counterfeit", "voided")

    async def test_a_void_applies_at_once_on_the_worker_that_took_it(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """The registry had the batch live (a scan just verified one of its codes): the void still
        applies to the very next scan, not a polling interval later."""
        before = (await scan(client, issued.urls[5], device())).json()
        assert before["verdict"] == "genuine_first"
        voided = await client.post(f"/v1/batches/{issued.batch.id}/void", headers=tenant_a.headers())
        assert voided.status_code == 200, voided.text
        for url in (issued.urls[6], issued.urls[5]):
            body = (await scan(client, url, device())).json()
            assert (body["verdict"], body["reason"]) == ("counterfeit", "voided")

    async def test_counterfeits_are_logged(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Forged scans are intelligence: they land in counterfeit_scans."""
        await scan(client, issued.urls[4][:-1] + "Z", device())
        cur = await db.execute("SELECT outcome FROM counterfeit_scans")
        assert [row[0] for row in await cur.fetchall()] in (["bad_tag"], [])  # "Z" may equal the last char
        await scan(client, "garbage-code", device())
        cur = await db.execute("SELECT count(*) FROM counterfeit_scans WHERE outcome = 'malformed'")
        assert (await cur.fetchone()) == (1,)

    async def test_get_never_scans(self, client: AsyncTestClient[Any], issued: IssuedBatch) -> None:
        """The scan endpoint takes POST only: link prefetchers cannot record or award anything."""
        assert (await client.get("/v1/scans")).status_code == 405


class TestDurability:
    async def test_fifty_simultaneous_first_scans_yield_one_first(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """50 concurrent scans of one code: exactly one genuine_first, counts 1..50, all logged."""
        # 50 phones: none carries the member cookie the test client would otherwise share among them.
        phone = {"Cookie": "none=1"}
        responses = await asyncio.gather(
            *(scan(client, issued.urls[5], device(), headers=phone) for _ in range(50))
        )
        bodies = [r.json() for r in responses]
        assert [b["verdict"] for b in bodies].count("genuine_first") == 1
        assert sorted(b["scan_count"] for b in bodies) == list(range(1, 51))
        cur = await db.execute(
            "SELECT count(*) FROM scans WHERE code_index = (SELECT code_index FROM code_claims)"
        )
        assert (await cur.fetchone()) == (50,)

    async def test_redis_flush_between_scans_still_repeat(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, settings: Settings
    ) -> None:
        """Losing Redis never yields a second first scan: PostgreSQL's claim decides."""
        assert (await scan(client, issued.urls[6], device())).json()["verdict"] == "genuine_first"
        r = redis.asyncio.Redis.from_url(settings.redis_url or "")
        async for key in r.scan_iter(match=f"{settings.redis_prefix}*"):
            await r.delete(key)
        await r.aclose()
        again = (await scan(client, issued.urls[6], device())).json()
        assert again["verdict"] == "genuine_repeat"
        assert again["scan_count"] == 2
        r = redis.asyncio.Redis.from_url(settings.redis_url or "")
        counters = [key async for key in r.scan_iter(match=f"{settings.redis_prefix}{{c:*}}:n")]
        assert [int(await r.get(key) or 0) for key in counters] == [2]  # Redis repaired from PostgreSQL
        await r.aclose()

    async def test_a_redis_that_forgot_its_scripts_is_taught_again(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, settings: Settings
    ) -> None:
        """After a Redis restart the scan script is gone (NOSCRIPT): it is loaded again, no scan fails."""
        assert (await scan(client, issued.urls[9], device())).status_code == 200
        r = redis.asyncio.Redis.from_url(settings.redis_url or "")
        await r.script_flush()
        await r.aclose()
        answers = await asyncio.gather(*(scan(client, issued.urls[10 + n], device()) for n in range(5)))
        assert [a.json()["verdict"] for a in answers] == ["genuine_first"] * 5

    async def test_idempotent_replays_have_one_effect(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """20 concurrent replays with one Idempotency-Key: one scan logged, 20 identical answers."""
        dev = device()
        headers = {"Idempotency-Key": "retry-1"}
        responses = await asyncio.gather(
            *(scan(client, issued.urls[7], dev, headers=headers) for _ in range(20))
        )
        assert {r.status_code for r in responses} == {200}
        assert len({r.text for r in responses}) == 1
        assert responses[0].json()["verdict"] == "genuine_first"
        cur = await db.execute("SELECT count(*) FROM scans")
        assert (await cur.fetchone()) == (1,)
        other = await scan(client, issued.urls[8], dev, headers=headers)
        assert_problem(other, 422, "validation-error")

    async def test_idempotency_survives_a_redis_flush(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, settings: Settings
    ) -> None:
        """After Redis loses the key, PostgreSQL still returns the original answer."""
        dev = device()
        headers = {"Idempotency-Key": "retry-2"}
        first = await scan(client, issued.urls[9], dev, headers=headers)
        r = redis.asyncio.Redis.from_url(settings.redis_url or "")
        async for key in r.scan_iter(match=f"{settings.redis_prefix}*"):
            await r.delete(key)
        await r.aclose()
        client.cookies.clear()  # the first answer's cookie was lost with it
        replay = await scan(client, issued.urls[9], dev, headers=headers)
        assert replay.text == first.text
        # The replay sets the member cookie again, so the page's wallet and claims keep working.
        assert f"oc_member={first.json()['member_token']}" in replay.headers.get("set-cookie", "")


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"code": "x" * 513, "device_id": "device-123"}, "code"),
            ({"code": "x"}, "body"),
            ({"code": "x", "device_id": "short"}, "device_id"),
            ({"code": "x", "device_id": "device-123", "location": {"lat": 91, "lng": 0}}, "location.lat"),
            ({"code": "x", "device_id": "device-123", "extra": 1}, "body"),
            ({"code": 5, "device_id": "device-123"}, "code"),
            # PostgreSQL's text cannot hold a NUL: refused here, never sent to a group commit.
            (
                {"code": "https://s.onecode.test/01/06901234567892/21/ABC\u0000", "device_id": "device-123"},
                "code",
            ),
        ],
    )
    async def test_invalid_bodies_are_422(
        self, client: AsyncTestClient[Any], body: dict[str, Any], field: str
    ) -> None:
        """Each invalid field is named; nothing is recorded."""
        problem = assert_problem(await client.post("/v1/scans", json=body), 422, "validation-error")
        assert problem["errors"][0]["field"] == field

    async def test_not_json_is_400(self, client: AsyncTestClient[Any]) -> None:
        response = await client.post(
            "/v1/scans", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, "malformed-body")

    async def test_a_megabyte_is_413(self, client: AsyncTestClient[Any]) -> None:
        response = await client.post(
            "/v1/scans", content=b"x" * (1024 * 1024), headers={"content-type": "application/json"}
        )
        assert_problem(response, 413, "body-too-large")

    async def test_a_streamed_megabyte_is_413_too(self) -> None:
        """Without a Content-Length (chunked), the limit holds on the bytes received.

        The test client cannot stream a body, so the body reader is fed ASGI messages directly.
        """
        sent = 0

        async def receive() -> Any:
            nonlocal sent
            sent += 1
            return {"type": "http.request", "body": b"x" * 65536, "more_body": sent < 16}

        with pytest.raises(HTTPException) as refused:
            await read_scan_body(receive, None, 64 * 1024)
        assert refused.value.status_code == 413
        assert sent == 2  # refused as soon as the limit was passed, the rest never read

    async def test_the_path_through_litestar_answers_alike(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """`POST /v1/scans` skips litestar's routing; a form of the path litestar routes reaches the same
        handler, with the same answers and the same problems."""
        body = {"code": issued.urls[3], "device_id": device()}
        routed = await client.post("/v1/scans/", json=body)
        assert routed.status_code == 200, routed.text
        assert routed.json()["verdict"] == "genuine_first"
        assert (await client.post("/v1/scans", json=body)).json()["verdict"] == "genuine_repeat"
        for path in ("/v1/scans", "/v1/scans/"):
            problem = assert_problem(await client.post(path, json={"code": "x"}), 422, "validation-error")
            assert problem["instance"].rstrip("/") == "/v1/scans"

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    async def test_other_methods_are_405(self, client: AsyncTestClient[Any], method: str) -> None:
        problem = assert_problem(await client.request(method, "/v1/scans"), 405, "method-not-allowed")
        assert problem["instance"] == "/v1/scans"


class TestThrottling:
    async def test_a_bot_device_is_throttled_and_a_person_is_not(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """A device bursting through codes gets 429 with Retry-After; another device is unaffected."""
        bot = device()
        statuses = [(await scan(client, url, bot)).status_code for url in issued.urls[10:60]]
        assert statuses[:30] == [200] * 30
        assert set(statuses[30:]) == {429}
        throttled = await scan(client, issued.urls[61], bot)
        assert_problem(throttled, 429, "rate-limited")
        assert int(throttled.headers["retry-after"]) >= 1
        client.cookies.clear()  # a person: another phone, without the bot's member cookie
        assert (await scan(client, issued.urls[62], device())).status_code == 200

    async def test_a_member_token_across_many_devices_is_throttled_too(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """One member token on a new device for every scan (a bot farm's trick): 30 a minute, then 429."""
        token = (await scan(client, issued.urls[63], device())).json()["member_token"]
        client.cookies.clear()
        statuses = [
            (await scan(client, url, device(), member_token=token)).status_code for url in issued.urls[64:99]
        ]
        assert statuses[:30] == [200] * 30
        assert set(statuses[30:]) == {429}
        client.cookies.clear()
        assert (await scan(client, issued.urls[99], device())).status_code == 200
