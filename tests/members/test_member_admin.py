"""Staff work on members over HTTP: search by phone, masked views by role, profile edits, timeline, notes,
tags, merges, and the finance approval of large points adjustments."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from campaigns import ledger, rewards
from campaigns.members import adjustments, profiles, segments, tags
from campaigns.members.errors import ApprovalRefused, TagInUse
from codegen import keys
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch
from tests.scans.test_members_api import enroll, forget_resend_cooldown, scanned_token

PHONE_E164 = "+8613800138000"


async def enrolled_member(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], url: str, device_id: str
) -> str:
    enrolled = await enroll(client, db, await scanned_token(client, url, device_id))
    assert enrolled.status_code == 200, enrolled.text
    return str(enrolled.json()["member"]["id"])


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=20)


class TestProfiles:
    async def test_search_by_phone_reveals_only_to_roles_that_may_see_it(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-search-1")
        for typed in ("138 0013 8000", "+86 138-0013-8000", "008613800138000"):
            found = await client.post(
                "/v1/members:search", json={"phone": typed}, headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
            )
            assert [(m["id"], m["phone"], m["phone_revealed"]) for m in found.json()] == [
                (member_id, PHONE_E164, True)
            ]
        masked = await client.post(
            "/v1/members:search", json={"phone": "13800138000"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert masked.json()[0]["phone"] == "+86138****8000"
        assert masked.json()[0]["phone_revealed"] is False
        other_brand = await client.post(
            "/v1/members:search",
            json={"phone": "13800138000"},
            headers=tenant_b.headers(Role.CUSTOMER_SERVICE),
        )
        assert other_brand.json() == []
        bad = await client.post(
            "/v1/members:search", json={"phone": "12"}, headers=tenant_a.headers(Role.CUSTOMER_SERVICE)
        )
        assert_problem(bad, 422, "validation-error")
        denied = await client.post(
            "/v1/members:search", json={"phone": "13800138000"}, headers=tenant_a.headers(Role.POINT_OF_SALE)
        )
        assert denied.status_code == 403
        audit = await client.get(
            "/v1/audit", params={"action": "member.read_personal"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert len(audit.json()["items"]) == 3  # the three revealed searches; the masked one is not logged

    async def test_profile_edits_are_sealed_under_the_members_own_key_and_validated(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-edit-1")
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        defined = await client.post(
            "/v1/member-attributes",
            json={"name": "store", "type": "choice", "choices": ["West Lake", "Binjiang"]},
            headers=tenant_a.headers(Role.BRAND_ADMIN),
        )
        assert defined.status_code == 200, defined.text
        patch = {
            "name": "张三丰",
            "gender": "male",
            "birthday": "1990-05-01",
            "region": "CN-ZJ",
            "attributes": {"store": "West Lake"},
        }
        updated = await client.patch(f"/v1/members/{member_id}", json=patch, headers=cs)
        assert updated.status_code == 200, updated.text
        body = updated.json()
        assert (body["name"], body["birthday"], body["region"], body["attributes"]) == (
            "张三丰",
            "1990-05-01",
            "CN-ZJ",
            {"store": "West Lake"},
        )
        marketer_view = (
            await client.get(f"/v1/members/{member_id}", headers=tenant_a.headers(Role.MARKETER))
        ).json()
        assert (marketer_view["name"], marketer_view["birthday"]) == ("张**", None)
        # At rest: no clear text, and not sealed under the master key itself but under the member's data key.
        cur = await db.execute(
            "SELECT profile_sealed, phone_sealed, data_key_sealed FROM members WHERE id = %s", (member_id,)
        )
        profile_sealed, phone_sealed, data_key_sealed = await cur.fetchone() or (None, None, None)
        assert data_key_sealed is not None
        assert "张三丰".encode() not in profile_sealed and b"13800138000" not in phone_sealed
        assert not keys.is_sealed_with(settings.master_key, profile_sealed)
        assert not keys.is_sealed_with(settings.master_key, phone_sealed)
        for bad, field in (
            ({"birthday": (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()}, "birthday"),
            ({"attributes": {"shoe_size": 42}}, "attributes.shoe_size"),
            ({"attributes": {"store": "Moon"}}, "attributes.store"),
            ({"region": "XX-99"}, "region"),
        ):
            refused = await client.patch(f"/v1/members/{member_id}", json=bad, headers=cs)
            assert assert_problem(refused, 422, "validation-error")["errors"][0]["field"] == field, bad
        unknown_field = await client.patch(f"/v1/members/{member_id}", json={"nickname": "x"}, headers=cs)
        assert unknown_field.status_code in {400, 422}
        # A retype must fit what is stored and what saved segments match: "West Lake" is no number, and
        # dropping it from the choices would leave the member holding a value no longer allowed.
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        await client.post(
            "/v1/segments",
            json={"name": "west", "filter": {"attributes": {"store": "West Lake"}}},
            headers=admin,
        )
        for retype in (
            {"name": "store", "type": "number"},
            {"name": "store", "type": "choice", "choices": ["Binjiang"]},
        ):
            refused = await client.post("/v1/member-attributes", json=retype, headers=admin)
            problem = assert_problem(refused, 409, "attribute-in-use")
            assert "1 members and segments west" in problem["detail"], problem
        # A date is YYYY-MM-DD and a real day, when typed in and when a text field turns into dates.
        await client.post("/v1/member-attributes", json={"name": "visit", "type": "text"}, headers=admin)
        as_date = {"name": "visit", "type": "date"}
        for held, fits in (("2024-02-30", False), ("20240115", False), ("2024-02-29", True)):
            kept = await client.patch(
                f"/v1/members/{member_id}", json={"attributes": {"visit": held}}, headers=cs
            )
            assert kept.status_code == 200, kept.text
            retyped = await client.post("/v1/member-attributes", json=as_date, headers=admin)
            assert retyped.status_code == (200 if fits else 409), (held, retyped.text)
        refused = await client.patch(
            f"/v1/members/{member_id}", json={"attributes": {"visit": "20240301"}}, headers=cs
        )
        assert assert_problem(refused, 422, "validation-error")["errors"][0]["field"] == "attributes.visit"
        widened = {"name": "store", "type": "choice", "choices": ["West Lake", "Binjiang", "Xixi"]}
        assert (await client.post("/v1/member-attributes", json=widened, headers=admin)).status_code == 200
        assert (
            await client.post("/v1/member-attributes", json={"name": "store", "type": "text"}, headers=admin)
        ).status_code == 200
        marketer = await client.patch(
            f"/v1/members/{member_id}", json={"name": "x"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert marketer.status_code == 403
        missing = await client.get(f"/v1/members/{uuid.uuid4()}", headers=cs)
        assert_problem(missing, 404, "not-found")

    async def test_timeline_shows_scans_points_and_notes_newest_first(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-timeline-1")
        await client.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-timeline-1"})
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        await client.post(
            f"/v1/members/{member_id}/points/adjustments",
            json={"amount": 20, "reason": "goodwill"},
            headers=cs,
        )
        noted = await client.post(
            f"/v1/members/{member_id}/notes", json={"body": "called about a broken cap"}, headers=cs
        )
        assert noted.status_code == 201, noted.text
        entries = (await client.get(f"/v1/members/{member_id}/timeline", headers=cs)).json()
        assert [e["kind"] for e in entries] == ["note", "points", "scan", "scan"]
        assert entries[0]["detail"]["body"] == "called about a broken cap"
        assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
        page = (
            await client.get(
                f"/v1/members/{member_id}/timeline",
                params={"before": entries[1]["at"], "limit": 1},
                headers=cs,
            )
        ).json()
        assert [e["kind"] for e in page] == ["scan"]
        marketer = (
            await client.get(f"/v1/members/{member_id}/timeline", headers=tenant_a.headers(Role.MARKETER))
        ).json()
        assert "body" not in marketer[0]["detail"]

    async def test_a_nul_in_a_name_or_note_is_refused_like_everywhere_else(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-nul-1")
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        named = await client.patch(f"/v1/members/{member_id}", json={"name": "a\u0000b"}, headers=cs)
        assert assert_problem(named, 422, "validation-error")["errors"][0]["field"] == "name"
        noted = await client.post(f"/v1/members/{member_id}/notes", json={"body": "a\u0000b"}, headers=cs)
        assert assert_problem(noted, 422, "validation-error")["errors"][0]["field"] == "body"
        lines = await client.post(f"/v1/members/{member_id}/notes", json={"body": "one\ntwo"}, headers=cs)
        assert lines.status_code == 201, lines.text

    async def test_timeline_pages_through_entries_that_share_a_time(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """A scan's points and draw are written at the scan's time: a cursor of time alone skipped them."""
        member_id = await enrolled_member(client, db, issued.urls[0], "device-timeline-2")
        await client.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-timeline-2"})
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        for n in range(3):
            await client.post(f"/v1/members/{member_id}/notes", json={"body": f"note {n}"}, headers=cs)
        adjustment = {"amount": 5, "reason": "goodwill"}
        await client.post(f"/v1/members/{member_id}/points/adjustments", json=adjustment, headers=cs)
        # The ledger is append-only: the other entries move to its time.
        shared = await (await db.execute("SELECT max(created_at) FROM points_ledger")).fetchone()
        assert shared is not None
        await db.execute("UPDATE member_notes SET created_at = %s", shared)
        await db.execute("UPDATE scans SET scanned_at = %s", shared)
        await db.commit()
        url = f"/v1/members/{member_id}/timeline"
        everything = (await client.get(url, headers=cs)).json()
        assert len(everything) == 6

        paged: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 2}
        while page := (await client.get(url, params=params, headers=cs)).json():
            paged.extend(page)
            last = page[-1]
            params = {"limit": 2, "before": last["at"], "before_entry": f"{last['kind']}:{last['ref']}"}
        assert paged == everything

        bad = await client.get(url, params={"before_entry": "scan:x"}, headers=cs)
        assert_problem(bad, 422, "validation-error")
        bad = await client.get(url, params={"before": last["at"], "before_entry": "gift:1"}, headers=cs)
        assert_problem(bad, 422, "validation-error")

    async def test_manual_tags_are_idempotent_and_rule_tags_are_not_given_by_hand(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-tags-1")
        marketer = tenant_a.headers(Role.MARKETER)
        assert (await client.post("/v1/tags", json={"name": "VIP"}, headers=marketer)).status_code == 201
        rule = {"name": "regular", "rule": {"min_scans": 3}}
        created = await client.post("/v1/tags", json=rule, headers=marketer)
        assert created.status_code == 201, created.text
        # The default window is part of the saved rule, and the answer says it.
        assert created.json()["rule"] == {
            "min_scans": 3,
            "within_days": 90,
            "product_ids": None,
            "min_points_earned": None,
            "min_points_spent": None,
            "region": None,
        }
        duplicate = await client.post("/v1/tags", json={"name": "VIP"}, headers=marketer)
        assert_problem(duplicate, 409, "conflict")
        empty_rule = await client.post(
            "/v1/tags", json={"name": "x", "rule": {"within_days": 5}}, headers=marketer
        )
        assert_problem(empty_rule, 422, "validation-error")
        for _ in range(2):
            tagged = await client.put(f"/v1/members/{member_id}/tags/VIP", headers=marketer)
            assert tagged.status_code == 200, tagged.text
        view = (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()
        assert view["tags"] == ["VIP"]
        assert_problem(
            await client.put(f"/v1/members/{member_id}/tags/nope", headers=marketer), 404, "not-found"
        )
        assert_problem(
            await client.put(f"/v1/members/{member_id}/tags/regular", headers=marketer),
            422,
            "validation-error",
        )
        removed = await client.delete(f"/v1/members/{member_id}/tags/VIP", headers=marketer)
        assert removed.status_code == 204
        assert (await client.get(f"/v1/members/{member_id}", headers=marketer)).json()["tags"] == []
        # A tag a saved segment filters on stays until the segment lets go of it: deleted, the segment
        # would name an unknown tag (a 422 on every count and export), or silently count no one.
        segment = await client.post(
            "/v1/segments", json={"name": "not VIP", "filter": {"tags_none": ["VIP"]}}, headers=marketer
        )
        in_use = await client.delete("/v1/tags/VIP", headers=marketer)
        assert (
            assert_problem(in_use, 409, "tag-in-use")["detail"] == "tag 'VIP' is named by segments: not VIP"
        )
        assert (
            await client.get(f"/v1/segments/{segment.json()['id']}/count", headers=marketer)
        ).status_code == 200
        await client.delete(f"/v1/segments/{segment.json()['id']}", headers=marketer)
        assert (await client.delete("/v1/tags/VIP", headers=marketer)).status_code == 204

    async def test_staff_merge_moves_points_and_devices_and_is_audited(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        keep = await enrolled_member(client, db, issued.urls[0], "device-merge-1")
        await forget_resend_cooldown(settings)
        client.cookies.clear()
        duplicate = (
            await client.post("/v1/scans", json={"code": issued.urls[1], "device_id": "device-merge-2"})
        ).json()["member"]["id"]
        now = dt.datetime.now(dt.UTC)
        await ledger.earn(
            db, ledger.Member(tenant_a.brand_id, uuid.UUID(duplicate)), 40, reason="t", source="t", now=now
        )
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        merged = await client.post(
            f"/v1/members/{duplicate}/merge",
            json={"into": keep, "reason": "same person, two phones"},
            headers=cs,
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["id"] == keep and merged.json()["points_balance"] == 40
        again = await client.post(
            f"/v1/members/{duplicate}/merge", json={"into": keep, "reason": "again"}, headers=cs
        )
        assert_problem(again, 422, "validation-error")
        itself = await client.post(
            f"/v1/members/{keep}/merge", json={"into": keep, "reason": "self"}, headers=cs
        )
        assert_problem(itself, 422, "validation-error")
        later = await client.post("/v1/scans", json={"code": issued.urls[2], "device_id": "device-merge-2"})
        assert later.json()["member"]["id"] == keep
        timeline = (await client.get(f"/v1/members/{keep}/timeline", headers=cs)).json()
        assert sum(1 for e in timeline if e["kind"] == "scan") == 3
        audit = await client.get(
            "/v1/audit", params={"action": "member.merge"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert audit.json()["items"][0]["after"]["points_moved"] == 40


class TestAdjustmentApproval:
    async def test_large_adjustments_wait_for_finance(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-approve-1")
        cs, finance = tenant_a.headers(Role.CUSTOMER_SERVICE), tenant_a.headers(Role.FINANCE)
        path = f"/v1/members/{member_id}/points/adjustments"
        asked = await client.post(path, json={"amount": 5000, "reason": "lost parcel"}, headers=cs)
        assert asked.status_code == 202, asked.text
        request = asked.json()["request"]
        assert (asked.json()["status"], request["status"]) == ("pending", "pending")
        view = (await client.get(f"/v1/members/{member_id}", headers=cs)).json()
        assert view["points_balance"] == 0  # nothing moves before the approval
        pending = (await client.get("/v1/points-adjustments", headers=finance)).json()
        assert [p["id"] for p in pending] == [request["id"]]
        assert (
            await client.post(f"/v1/points-adjustments/{request['id']}/approve", headers=cs)
        ).status_code == 403
        bad = await client.post(f"/v1/points-adjustments/{request['id']}/maybe", headers=finance)
        assert_problem(bad, 422, "validation-error")
        approved = await client.post(f"/v1/points-adjustments/{request['id']}/approve", headers=finance)
        assert approved.status_code == 200, approved.text
        assert approved.json()["adjustment"]["balance"] == 5000
        twice = await client.post(f"/v1/points-adjustments/{request['id']}/approve", headers=finance)
        assert_problem(twice, 409, "approval-refused")
        # Finance's own large adjustment waits for another finance user too (four eyes).
        own = await client.post(path, json={"amount": -2000, "reason": "reversal"}, headers=finance)
        assert own.status_code == 202
        self_approved = await client.post(
            f"/v1/points-adjustments/{own.json()['request']['id']}/approve", headers=finance
        )
        assert_problem(self_approved, 409, "approval-refused")
        small = await client.post(path, json={"amount": 10, "reason": "goodwill"}, headers=cs)
        assert small.status_code == 201
        rejected_request = (
            await client.post(path, json={"amount": 9999, "reason": "typo"}, headers=cs)
        ).json()
        rejected = await client.post(
            f"/v1/points-adjustments/{rejected_request['request']['id']}/reject",
            json={"reason": "a typo: 99 was meant"},
            headers=finance,
        )
        assert rejected.json()["status"] == "rejected"
        assert (await client.get(f"/v1/members/{member_id}", headers=cs)).json()["points_balance"] == 5010

    async def test_a_rejection_says_why(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        """A rejection needs a reason, stored with the request, shown in its read shape and audited; an
        unknown field or a reason out of bounds is a 422 that decides nothing; an approval may say why."""
        member_id = await enrolled_member(client, db, issued.urls[0], "device-approve-3")
        cs, finance = tenant_a.headers(Role.CUSTOMER_SERVICE), tenant_a.headers(Role.FINANCE)
        path = f"/v1/members/{member_id}/points/adjustments"
        asked = (await client.post(path, json={"amount": 9999, "reason": "typo"}, headers=cs)).json()
        assert asked["request"]["decision_reason"] is None
        reject = f"/v1/points-adjustments/{asked['request']['id']}/reject"
        for body, field in (
            (None, "reason"),
            ({}, "reason"),
            ({"reason": "no"}, "reason"),
            ({"reason": "x" * 201}, "reason"),
            ({"reason": "duplicate", "note": "x"}, "note"),
        ):
            refused = await client.post(reject, json=body, headers=finance)
            problem = assert_problem(refused, 422, "validation-error")
            assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
        pending = (await client.get("/v1/points-adjustments", headers=finance)).json()
        assert [p["id"] for p in pending] == [asked["request"]["id"]]  # still waiting
        rejected = await client.post(
            reject, json={"reason": "duplicate of an earlier request"}, headers=finance
        )
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["request"]["decision_reason"] == "duplicate of an earlier request"
        listed = await client.get("/v1/points-adjustments", params={"status": "rejected"}, headers=finance)
        assert [(r["status"], r["decision_reason"]) for r in listed.json()] == [
            ("rejected", "duplicate of an earlier request")
        ]
        audit = await client.get(
            "/v1/audit", params={"action": "points.adjust_rejected"}, headers=tenant_a.headers()
        )
        [entry] = audit.json()["items"]
        assert entry["after"]["decision_reason"] == "duplicate of an earlier request"
        approved_request = (
            await client.post(path, json={"amount": 5000, "reason": "lost parcel"}, headers=cs)
        ).json()
        approve = f"/v1/points-adjustments/{approved_request['request']['id']}/approve"
        approved = await client.post(approve, json={"reason": "courier confirmed the loss"}, headers=finance)
        assert approved.status_code == 200, approved.text
        assert approved.json()["request"]["decision_reason"] == "courier confirmed the loss"

    async def test_nobody_approves_their_own_request(
        self,
        db: psycopg.AsyncConnection[Any],
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
    ) -> None:
        member_id = await enrolled_member(client, db, issued.urls[0], "device-approve-2")
        member = ledger.Member(tenant_a.brand_id, uuid.UUID(member_id))
        async with db.transaction():
            asked = await adjustments.request(
                db, member, rewards.AdjustmentIn(amount=5000, reason="x" * 5), actor="token:same"
            )
        with pytest.raises(ApprovalRefused):
            async with db.transaction():
                await adjustments.decide(
                    db,
                    tenant_a.brand_id,
                    asked.id,
                    approve=True,
                    reason=None,
                    actor="token:same",
                    now=dt.datetime.now(dt.UTC),
                )


async def test_a_brand_holds_a_bounded_number_of_tags_segments_and_attributes(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
) -> None:
    """Lists of tags, segments and attributes come whole, and rule tags are evaluated for every member:
    past their caps a new one is 409 limit-reached (redefining an attribute still works)."""
    brand = tenant_a.brand_id
    await db.execute(
        "INSERT INTO tags (brand_id, name, kind, rule) SELECT %s, 'rule-' || g, 'rule', '{\"min_scans\": 1}'"
        " FROM generate_series(1, %s) g",
        (brand, tags.MAX_RULE_TAGS),
    )
    admin = tenant_a.headers(Role.BRAND_ADMIN)
    rule = {"name": "one more rule", "rule": {"min_scans": 2}}
    assert_problem(await client.post("/v1/tags", json=rule, headers=admin), 409, "limit-reached")
    assert (await client.post("/v1/tags", json={"name": "manual"}, headers=admin)).status_code == 201
    await db.execute(
        "INSERT INTO tags (brand_id, name, kind) SELECT %s, 'manual-' || g, 'manual'"
        " FROM generate_series(1, %s) g",
        (brand, tags.MAX_TAGS - tags.MAX_RULE_TAGS - 1),
    )
    refused = await client.post("/v1/tags", json={"name": "one too many"}, headers=admin)
    assert (
        assert_problem(refused, 409, "limit-reached")["detail"]
        == "a brand has at most 1000 tags; delete one first"
    )

    await db.execute(
        "INSERT INTO segments (brand_id, name, filter, created_by) SELECT %s, 'segment-' || g, '{}', 'test'"
        " FROM generate_series(1, %s) g",
        (brand, segments.MAX_SEGMENTS),
    )
    segment = {"name": "one too many", "filter": {}}
    assert_problem(await client.post("/v1/segments", json=segment, headers=admin), 409, "limit-reached")

    await db.execute(
        "INSERT INTO member_attribute_defs (brand_id, name, type) SELECT %s, 'field_' || g, 'text'"
        " FROM generate_series(1, %s) g",
        (brand, profiles.MAX_ATTRIBUTES),
    )
    new_field = {"name": "one_too_many", "type": "text"}
    assert_problem(
        await client.post("/v1/member-attributes", json=new_field, headers=admin), 409, "limit-reached"
    )
    redefined = await client.post(
        "/v1/member-attributes", json={"name": "field_1", "type": "number"}, headers=admin
    )
    assert redefined.status_code == 200, redefined.text


async def test_a_tag_being_named_by_a_new_segment_is_not_deleted_under_it(
    client: AsyncTestClient[Any], settings: Settings, tenant_a: Tenant
) -> None:
    """A segment naming the tag, not yet committed, and the tag's deletion at the same moment: the
    deletion waits for the segment and then refuses (before, both passed their checks)."""
    assert (
        await client.post("/v1/tags", json={"name": "VIP"}, headers=tenant_a.headers())
    ).status_code == 201
    url = settings.database_url or ""
    async with (
        await psycopg.AsyncConnection.connect(url) as naming,
        await psycopg.AsyncConnection.connect(url) as deleting,
    ):
        segment = segments.SegmentIn(name="VIPs", filter=segments.SegmentFilter(tags_any=["VIP"]))
        await segments.create(naming, tenant_a.brand_id, segment, actor="test")
        deletion = asyncio.create_task(tags.delete_tag(deleting, tenant_a.brand_id, "VIP"))
        await asyncio.sleep(0.5)
        assert not deletion.done()  # waiting for the segment's transaction
        await naming.commit()
        with pytest.raises(TagInUse):
            await deletion
        await deleting.rollback()
    listed = (await client.get("/v1/tags", headers=tenant_a.headers())).json()
    assert [t["name"] for t in listed["items"]] == ["VIP"]
