"""Clone detection: a copied code turns `suspect_clone` at the documented thresholds and is flagged."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from antifraud import clones
from antifraud.signals import CodeSignals
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

# Five provincial capitals: Hangzhou, Shanghai, Guangzhou, Nanjing, Chengdu.
PROVINCES = [(30.27, 120.16), (31.23, 121.47), (23.13, 113.26), (32.06, 118.79), (30.66, 104.07)]


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=30)


async def scan(client: AsyncTestClient[Any], url: str, where: tuple[float, float] | None = None) -> Any:
    client.cookies.clear()
    body: dict[str, Any] = {"code": url, "device_id": f"dev-{uuid.uuid4().hex}"}
    if where is not None:
        body["location"] = {"lat": where[0], "lng": where[1], "accuracy_m": 30.0}
    response = await client.post("/v1/scans", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def set_rules(client: AsyncTestClient[Any], tenant: Tenant, **rules: int | None) -> Any:
    return await client.put("/v1/antifraud/clone-rules", json=rules, headers=tenant.headers(Role.OPERATIONS))


class TestThresholds:
    async def test_20_devices_turn_a_code_suspect_at_the_10th(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """Default rule: 10 distinct devices. The first 9 scans are genuine, from the 10th on suspect."""
        verdicts = [(await scan(client, issued.urls[0]))["verdict"] for _ in range(20)]
        assert verdicts == ["genuine_first"] + ["genuine_repeat"] * 8 + ["suspect_clone"] * 11
        flagged = await client.get("/v1/antifraud/flagged", headers=tenant_a.headers(Role.OPERATIONS))
        [flag] = flagged.json()["items"]
        assert (flag["position"], flag["reasons"], flag["suspect_scans"], flag["scans"]) == (
            0,
            ["devices", "burst"],  # the 20th scan within 10 minutes also reached the burst rule
            11,
            20,
        )
        assert flag["score"] == 200  # 20 devices against a threshold of 10

    async def test_the_case_of_a_flagged_code_goes_up_for_review(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        packed = await client.post(
            "/v1/aggregations:pack",
            json={"batch_id": str(issued.batch.id), "items_per_case": 10, "gs1_company_prefix": "0614141"},
            headers=tenant_a.headers(),
        )
        assert packed.status_code == 201, packed.text
        assert (await set_rules(client, tenant_a, devices=2)).status_code == 200
        for url in (issued.urls[11], issued.urls[11], issued.urls[12], issued.urls[12]):
            await scan(client, url)
        cases = await client.get("/v1/antifraud/flagged-cases", headers=tenant_a.headers(Role.AUDITOR))
        assert cases.status_code == 200, cases.text
        [case] = cases.json()
        parents = await client.get(
            f"/v1/batches/{issued.batch.id}/items/11/parents", headers=tenant_a.headers()
        )
        assert (case["case_sscc"], case["flagged_codes"]) == (parents.json()[0]["sscc"], 2)

    async def test_a_burst_of_scans_of_one_code_turns_it_suspect_at_the_20th(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """One phone scanning the one code over and over (devices rule set aside): suspect at scan 20."""
        assert (await set_rules(client, tenant_a, devices=1000)).status_code == 200
        client.cookies.clear()
        body = {"code": issued.urls[4], "device_id": "dev-the-same-phone"}
        verdicts = [(await client.post("/v1/scans", json=body)).json()["verdict"] for _ in range(21)]
        assert verdicts == ["genuine_first"] + ["genuine_repeat"] * 18 + ["suspect_clone"] * 2

    async def test_a_code_seen_before_activation_turns_suspect_at_half_the_threshold(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
    ) -> None:
        """A leaked code (scanned before shipping): 50 points up front, so the 5th device (50%) suffices."""
        leaked = await issue_batch(db, settings, tenant_a.brand_id, quantity=5, activation="on_shipment")
        assert (await scan(client, leaked.urls[0]))["verdict"] == "not_activated"
        distributor = await client.post(
            "/v1/distributors", json={"name": "East", "regions": ["CN-ZJ"]}, headers=tenant_a.headers()
        )
        shipped = await client.post(
            "/v1/shipments",
            json={
                "distributor_id": distributor.json()["id"],
                "items": [{"batch_id": str(leaked.batch.id), "start": 0, "stop": 5}],
            },
            headers=tenant_a.headers(),
        )
        assert shipped.status_code == 201, shipped.text
        verdicts = [(await scan(client, leaked.urls[0]))["verdict"] for _ in range(6)]
        assert verdicts == ["genuine_first"] + ["genuine_repeat"] * 3 + ["suspect_clone"] * 2
        flags = (await client.get("/v1/antifraud/flagged", headers=tenant_a.headers())).json()["items"]
        assert flags[0]["reasons"] == ["devices", "leaked"]
        # The serial as printed, to open the item's story from the list.
        assert leaked.urls[0].endswith("/" + flags[0]["serial"])
        trace = await client.get(f"/v1/codes/{flags[0]['serial']}/trace", headers=tenant_a.headers())
        assert trace.status_code == 200, trace.text

    async def test_5_provinces_turn_a_code_suspect_at_the_3rd(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """Default rule: 3 distinct provinces (travel off here: test scans come a millisecond apart)."""
        assert (await set_rules(client, tenant_a, max_speed_kmh=None)).status_code == 200
        answers = [await scan(client, issued.urls[1], where) for where in PROVINCES]
        assert [a["verdict"] for a in answers] == ["genuine_first", "genuine_repeat"] + ["suspect_clone"] * 3
        assert answers[2]["reason"] == "regions"

    async def test_5_known_members_turn_a_code_suspect_at_the_5th(
        self, client: AsyncTestClient[Any], issued: IssuedBatch
    ) -> None:
        """Default rule: 5 distinct members with tokens (returning people), well under the device rule."""
        tokens = []
        for n in range(5):  # five people, each with an account from an earlier scan of another code
            client.cookies.clear()
            first = await client.post(
                "/v1/scans", json={"code": issued.urls[10 + n], "device_id": f"person-{n}"}
            )
            tokens.append((f"person-{n}", first.json()["member_token"]))
        assert (await scan(client, issued.urls[2]))["verdict"] == "genuine_first"
        verdicts = []
        for device, token in tokens:
            client.cookies.clear()
            body = {"code": issued.urls[2], "device_id": device, "member_token": token}
            verdicts.append((await client.post("/v1/scans", json=body)).json())
        assert [v["verdict"] for v in verdicts] == ["genuine_repeat"] * 4 + ["suspect_clone"]
        assert verdicts[-1]["reason"] == "members"

    async def test_impossible_travel_makes_the_second_scan_suspect(
        self, client: AsyncTestClient[Any], issued: IssuedBatch, tenant_a: Tenant
    ) -> None:
        """Hangzhou then Guangzhou (about 1,000 km) a moment apart: faster than any plane."""
        first = await scan(client, issued.urls[2], PROVINCES[0])
        second = await scan(client, issued.urls[2], PROVINCES[2])
        assert (first["verdict"], second["verdict"], second["reason"]) == (
            "genuine_first",
            "suspect_clone",
            "travel",
        )
        # From Guangzhou to Shanghai, a third province: flagged again, and the list keeps both reasons.
        assert (await scan(client, issued.urls[2], PROVINCES[1]))["verdict"] == "suspect_clone"
        operations = tenant_a.headers(Role.OPERATIONS)
        [flag] = (await client.get("/v1/antifraud/flagged", headers=operations)).json()["items"]
        assert flag["reasons"] == ["travel", "regions"]
        # The same town again is no travel at all.
        assert (await scan(client, issued.urls[3], PROVINCES[0]))["verdict"] == "genuine_first"
        assert (await scan(client, issued.urls[3], PROVINCES[0]))["verdict"] == "genuine_repeat"


class TestConsequences:
    async def test_a_suspect_scan_earns_nothing_and_a_review_can_clear_it(
        self,
        client: AsyncTestClient[Any],
        issued: IssuedBatch,
        tenant_a: Tenant,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        assert (await set_rules(client, tenant_a, devices=2)).status_code == 200
        campaign = await client.post(
            "/v1/campaigns",
            json={
                "name": "Every scan",
                "kind": "points",
                "starts_at": "2020-01-01T00:00:00Z",
                "ends_at": "2099-01-01T00:00:00Z",
                "budget_cents": 100_000,
                "points_reward": {"points": 10},
                "eligibility": {"first_scan_only": False},
            },
            headers=tenant_a.headers(Role.MARKETER),
        )
        await client.post(
            f"/v1/campaigns/{campaign.json()['id']}:activate", headers=tenant_a.headers(Role.MARKETER)
        )
        # The first scan of code 5 never claimed a reward in time: its later scans could be rewarded.
        await db.execute("UPDATE campaigns SET status = 'paused'")
        await scan(client, issued.urls[5])
        await db.execute("UPDATE campaigns SET status = 'active'")
        suspect = await scan(client, issued.urls[5])
        assert (suspect["verdict"], suspect["reward"]) == ("suspect_clone", None)
        flags = (await client.get("/v1/antifraud/flagged", headers=tenant_a.headers())).json()["items"]
        cleared = await client.post(
            f"/v1/antifraud/flagged/{flags[0]['id']}/review",
            json={"status": "cleared"},
            headers=tenant_a.headers(),
        )
        assert cleared.status_code == 200, cleared.text
        after = await scan(client, issued.urls[5])
        assert after["verdict"] == "genuine_repeat"
        assert after["reward"]["points"] == 10
        listed = await client.get(
            "/v1/antifraud/flagged", params={"status": "cleared"}, headers=tenant_a.headers()
        )
        assert [f["reviewed_by"] is not None for f in listed.json()["items"]] == [True]

    async def test_rules_are_validated_and_kept_per_brand(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        assert_problem(await set_rules(client, tenant_a, devices=1), 422, "validation-error")
        assert (await set_rules(client, tenant_a, devices=5, regions=4, max_speed_kmh=900)).status_code == 200
        mine = await client.get("/v1/antifraud/clone-rules", headers=tenant_a.headers(Role.AUDITOR))
        theirs = await client.get("/v1/antifraud/clone-rules", headers=tenant_b.headers(Role.AUDITOR))
        assert mine.json() == {"devices": 5, "members": 5, "regions": 4, "max_speed_kmh": 900, "burst": 20}
        assert theirs.json() == {"devices": 10, "members": 5, "regions": 3, "max_speed_kmh": 800, "burst": 20}
        assert (await set_rules(client, tenant_a, devices=3)).status_code == 200
        assert (await client.get("/v1/antifraud/clone-rules", headers=tenant_a.headers())).json()[
            "devices"
        ] == 3
        marketer = await client.put(
            "/v1/antifraud/clone-rules", json={"devices": 3}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert marketer.status_code == 403


@given(
    devices=st.integers(1, 50),
    members=st.integers(0, 12),
    regions=st.integers(0, 10),
    km=st.none() | st.integers(0, 5_000),
    seconds=st.integers(0, 86_400),
    burst=st.integers(0, 60),
    leaked=st.booleans(),
)
def test_the_score_is_the_worst_signal_against_its_threshold(
    devices: int, members: int, regions: int, km: int | None, seconds: int, burst: int, leaked: bool
) -> None:
    """Suspect when a signal reaches its threshold, or half of it for a code seen before activation."""
    rules = clones.CloneRules()
    assert rules.max_speed_kmh is not None
    signals = CodeSignals(
        devices + 1, devices, regions, km, None if km is None else seconds, burst, leaked, members
    )
    risk = clones.assess(signals, rules)
    share = 2 if leaked else 1  # a leaked code needs half of any threshold
    assert risk.suspect == (
        devices * share >= rules.devices
        or members * share >= rules.members
        or regions * share >= rules.regions
        or burst * share >= rules.burst
        or (
            km is not None
            and km >= clones.MIN_TRAVEL_KM
            and km * 3600 * share >= max(seconds, 1) * rules.max_speed_kmh
        )
    )
    assert set(risk.reasons) <= {"devices", "members", "regions", "travel", "burst", "leaked"}
    assert bool(risk.reasons) == risk.suspect
