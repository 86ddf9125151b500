"""Shipments activate codes: a leaked (unshipped) code scans `not_activated`; distributors see their own."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from antifraud import divisions, regions
from service import auth
from service.models import Role, TokenIn
from service.settings import Settings
from tests.antifraud.xdb import write_xdb
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import IssuedBatch, issue_batch

HANGZHOU = {"lat": 30.27, "lng": 120.16, "accuracy_m": 50.0}
GUANGZHOU = {"lat": 23.13, "lng": 113.26, "accuracy_m": 50.0}
NINGBO = {"lat": 29.87, "lng": 121.54, "accuracy_m": 50.0}


@pytest.fixture
async def issued(db: psycopg.AsyncConnection[Any], settings: Settings, tenant_a: Tenant) -> IssuedBatch:
    return await issue_batch(db, settings, tenant_a.brand_id, quantity=100, activation="on_shipment")


async def distributor(
    client: AsyncTestClient[Any], tenant: Tenant, name: str = "East China", regions: list[str] | None = None
) -> str:
    body = {"name": name, "regions": regions if regions is not None else ["CN-ZJ", "CN-SH"]}
    response = await client.post("/v1/distributors", json=body, headers=tenant.headers(Role.OPERATIONS))
    assert response.status_code == 201, response.text
    distributor_id: str = response.json()["id"]
    return distributor_id


async def ship(
    client: AsyncTestClient[Any], tenant: Tenant, distributor_id: str, batch_id: Any, start: int, stop: int
) -> Any:
    return await client.post(
        "/v1/shipments",
        json={
            "distributor_id": distributor_id,
            "reference": "DN-1",
            "items": [{"batch_id": str(batch_id), "start": start, "stop": stop}],
        },
        headers=tenant.headers(Role.OPERATIONS),
    )


async def scan(client: AsyncTestClient[Any], url: str, **extra: Any) -> Any:
    client.cookies.clear()
    response = await client.post(
        "/v1/scans", json={"code": url, "device_id": f"dev-{uuid.uuid4().hex}", **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def distributor_headers(db: psycopg.AsyncConnection[Any], tenant: Tenant, distributor_id: str) -> Any:
    issued = await auth.create_token(
        db,
        actor="test",
        brand_id=tenant.brand_id,
        data=TokenIn(role=Role.DISTRIBUTOR, name="portal", distributor_id=uuid.UUID(distributor_id)),
        default_ttl_days=1,
    )
    return {"Authorization": f"Bearer {issued.secret}"}


class TestActivation:
    async def test_a_code_is_inert_until_shipped_then_scans_as_a_first_scan(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Before: `not_activated`, the product shown, no member, logged and counted. After: genuine_first."""
        before = await scan(client, issued.urls[3])
        assert before["verdict"] == "not_activated"
        assert before["product"]["name"] == issued.product.name
        assert before["member"] is None and before["reward"] is None and before["member_token"] is None
        summary = await client.get(f"/v1/batches/{issued.batch.id}/activation", headers=tenant_a.headers())
        assert summary.json() == {
            "batch_id": str(issued.batch.id),
            "activation": "on_shipment",
            "quantity": 100,
            "activated": 0,
            "not_activated_scans": 1,
        }
        shipped = await ship(client, tenant_a, await distributor(client, tenant_a), issued.batch.id, 0, 10)
        assert shipped.status_code == 201, shipped.text
        assert shipped.json()["items"] == 10
        after = await scan(client, issued.urls[3])
        assert (after["verdict"], after["scan_count"]) == ("genuine_first", 1)
        assert (await scan(client, issued.urls[10]))["verdict"] == "not_activated"
        cur = await db.execute("SELECT verdict FROM scans ORDER BY scanned_at")
        assert [row[0] for row in await cur.fetchall()] == ["not_activated", "genuine_first", "not_activated"]

    async def test_cases_and_pallets_ship_their_items(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, issued: IssuedBatch
    ) -> None:
        packed = await client.post(
            "/v1/aggregations:pack",
            json={
                "batch_id": str(issued.batch.id),
                "items_per_case": 10,
                "cases_per_pallet": 2,
                "gs1_company_prefix": "0614141",
            },
            headers=tenant_a.headers(),
        )
        pallet = packed.json()[0]["sscc"]
        response = await client.post(
            "/v1/shipments",
            json={"distributor_id": await distributor(client, tenant_a), "sscc": [pallet]},
            headers=tenant_a.headers(Role.OPERATIONS),
        )
        assert response.status_code == 201, response.text
        assert response.json()["ranges"] == [{"batch_id": str(issued.batch.id), "start": 0, "stop": 20}]
        assert (await scan(client, issued.urls[19]))["verdict"] == "genuine_first"
        assert (await scan(client, issued.urls[20]))["verdict"] == "not_activated"

    async def test_bad_shipments_are_refused_with_clear_errors(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
        issued: IssuedBatch,
    ) -> None:
        east = await distributor(client, tenant_a)
        assert (await ship(client, tenant_a, east, issued.batch.id, 0, 10)).status_code == 201
        assert_problem(await ship(client, tenant_a, east, issued.batch.id, 5, 15), 409, "conflict")
        assert_problem(await ship(client, tenant_a, east, issued.batch.id, 90, 101), 422, "validation-error")
        foreign = await distributor(client, tenant_b, "Theirs")
        assert_problem(await ship(client, tenant_a, foreign, issued.batch.id, 20, 30), 404, "not-found")
        unknown_case = await client.post(
            "/v1/shipments",
            json={"distributor_id": east, "sscc": ["106141410000000009"]},
            headers=tenant_a.headers(Role.OPERATIONS),
        )
        assert_problem(unknown_case, 404, "not-found")
        nothing = await client.post(
            "/v1/shipments", json={"distributor_id": east}, headers=tenant_a.headers(Role.OPERATIONS)
        )
        assert_problem(nothing, 422, "validation-error")
        reversed_range = assert_problem(
            await ship(client, tenant_a, east, issued.batch.id, 50, 40), 422, "validation-error"
        )
        assert "reversed" in reversed_range["errors"][0]["message"]
        # A pallet recorded empty before empty ones were refused, and one case named twice.
        await client.post(
            "/v1/aggregations",
            json={
                "level": "case",
                "sscc": "106141410000000016",
                "items": [{"batch_id": str(issued.batch.id), "start": 30, "stop": 35}],
            },
            headers=tenant_a.headers(),
        )
        await db.execute(
            "INSERT INTO aggregations (brand_id, level, sscc) VALUES (%s, 'pallet', '106141410000007773')",
            (tenant_a.brand_id,),
        )
        for sscc, message in (
            (["106141410000007773"], "nothing to ship"),
            (["106141410000000016"] * 2, "twice"),
        ):
            refused = await client.post(
                "/v1/shipments",
                json={"distributor_id": east, "sscc": sscc},
                headers=tenant_a.headers(Role.OPERATIONS),
            )
            assert message in assert_problem(refused, 422, "validation-error")["detail"]
        bad_region = await client.post(
            "/v1/distributors", json={"name": "Nowhere", "regions": ["CN-ZZ"]}, headers=tenant_a.headers()
        )
        assert_problem(bad_region, 422, "validation-error")
        await client.post(f"/v1/batches/{issued.batch.id}/void", headers=tenant_a.headers())
        assert_problem(await ship(client, tenant_a, east, issued.batch.id, 50, 60), 409, "conflict")


class TestDistributorScope:
    async def test_a_distributor_sees_and_receives_only_its_own_shipments(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        east = await distributor(client, tenant_a)
        south = await distributor(client, tenant_a, "South China", ["CN-GD"])
        mine = (await ship(client, tenant_a, east, issued.batch.id, 0, 10)).json()["id"]
        theirs = (await ship(client, tenant_a, south, issued.batch.id, 10, 20)).json()["id"]
        portal = await distributor_headers(db, tenant_a, east)
        listed = await client.get("/v1/shipments", headers=portal)
        assert [s["id"] for s in listed.json()["items"]] == [mine]
        # The list shows each shipment's ranges, as the shipment itself does.
        [shown] = listed.json()["items"]
        assert shown["ranges"] == [{"batch_id": str(issued.batch.id), "start": 0, "stop": 10}]
        assert shown == (await client.get(f"/v1/shipments/{mine}", headers=portal)).json()
        assert (await client.get(f"/v1/shipments/{theirs}", headers=portal)).status_code == 404
        # The brand's list: newest first, a page at a time, and by distributor or receipt.
        ops = tenant_a.headers(Role.OPERATIONS)
        newest = await client.get("/v1/shipments", params={"limit": 1}, headers=ops)
        assert [s["id"] for s in newest.json()["items"]] == [theirs]
        older = await client.get(
            "/v1/shipments", params={"limit": 1, "after": newest.json()["next_cursor"]}, headers=ops
        )
        assert [s["id"] for s in older.json()["items"]] == [mine]
        assert older.json()["next_cursor"] is None  # the last shipment: no empty page after it
        by_south = await client.get("/v1/shipments", params={"distributor_id": south}, headers=ops)
        assert [s["id"] for s in by_south.json()["items"]] == [theirs]
        sneaky = await client.get("/v1/shipments", params={"distributor_id": south}, headers=portal)
        assert sneaky.json()["items"] == []  # a distributor's own, whatever it filters on
        assert (await client.post(f"/v1/shipments/{theirs}/receive", headers=portal)).status_code == 404
        received = await client.post(f"/v1/shipments/{mine}/receive", headers=portal)
        assert received.status_code == 200, received.text
        again = await client.post(f"/v1/shipments/{mine}/receive", headers=portal)
        assert again.json()["received_at"] == received.json()["received_at"]
        waiting = await client.get("/v1/shipments", params={"received": "false"}, headers=ops)
        assert [s["id"] for s in waiting.json()["items"]] == [theirs]
        receipts = await client.get(
            "/v1/audit", params={"action": "shipment.receive"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert len(receipts.json()["items"]) == 1  # the repeat changed nothing, and wrote nothing
        assert [d["id"] for d in (await client.get("/v1/distributors", headers=portal)).json()["items"]] == [
            east
        ]
        assert (await client.get(f"/v1/distributors/{south}", headers=portal)).status_code == 404
        for method, path in [
            ("POST", "/v1/shipments"),
            ("GET", "/v1/campaigns"),
            ("GET", "/v1/products"),
            ("GET", f"/v1/batches/{issued.batch.id}/activation"),
            ("GET", "/v1/audit"),
            ("GET", "/v1/brands"),
            ("GET", f"/v1/brands/{tenant_a.brand_id}"),
        ]:
            response = await client.request(method, path, headers=portal, json={})
            assert response.status_code == 403, (method, path, response.text)

    async def test_a_distributor_token_must_name_a_distributor_of_the_brand(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        foreign = await distributor(client, tenant_b, "Theirs")
        response = await client.post(
            "/v1/tokens",
            json={"role": "distributor", "name": "portal", "distributor_id": foreign},
            headers=tenant_a.headers(),
        )
        assert_problem(response, 404, "not-found")


class TestWhereAndDiversion:
    async def test_a_scan_outside_the_territory_is_a_diversion_of_that_distributor(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        east = await distributor(client, tenant_a)
        await ship(client, tenant_a, east, issued.batch.id, 0, 10)
        await scan(client, issued.urls[0], location=HANGZHOU)
        await scan(client, issued.urls[1], location=GUANGZHOU)
        await scan(client, issued.urls[2])
        # 0,0 is a phone without a fix, not a sale off the coast of Ghana.
        await scan(client, issued.urls[3], location={"lat": 0, "lng": 0, "accuracy_m": 5000.0})
        cur = await db.execute(
            "SELECT region, distributor_id::text, diverted, lat FROM scans ORDER BY scanned_at"
        )
        rows = await cur.fetchall()
        assert [row[:3] for row in rows] == [
            ("CN-ZJ", east, False),
            ("CN-GD", east, True),
            (None, east, False),
            (None, east, False),
        ]
        assert rows[3][3] is None  # nor logged
        # The territory changes afterwards: the report still shows the one the scan was judged against.
        await asyncio.sleep(0.01)
        moved = await client.put(
            f"/v1/distributors/{east}/regions", json={"regions": ["CN-GD"]}, headers=tenant_a.headers()
        )
        assert moved.status_code == 200, moved.text
        report = (await client.get("/v1/reports/diversion", headers=tenant_a.headers(Role.OPERATIONS))).json()
        assert [(e["region"], e["territory"]) for e in report["items"]] == [("CN-GD", ["CN-SH", "CN-ZJ"])]

    async def test_a_city_territory_catches_a_scan_in_another_city_of_its_province(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Hangzhou's distributor (CN-330100): a scan in Ningbo, Zhejiang too, is a diversion; one in
        Hangzhou is not; one in Zhejiang whose city is unknown is not held against it."""
        hangzhou = await distributor(client, tenant_a, "Hangzhou", ["CN-330100"])
        await ship(client, tenant_a, hangzhou, issued.batch.id, 0, 10)
        await scan(client, issued.urls[0], location=HANGZHOU)
        await scan(client, issued.urls[1], location=NINGBO)
        await scan(client, issued.urls[2], location=GUANGZHOU)
        await scan(client, issued.urls[3])
        cur = await db.execute("SELECT region, city, diverted FROM scans ORDER BY scanned_at")
        assert await cur.fetchall() == [
            ("CN-ZJ", "CN-330100", False),
            ("CN-ZJ", "CN-330200", True),
            ("CN-GD", "CN-440100", True),
            (None, None, False),
        ]
        portal = await distributor_headers(db, tenant_a, hangzhou)
        report = await client.get("/v1/reports/diversion", headers=portal)
        assert [e["city"] for e in report.json()["items"]] == ["CN-440100", "CN-330200"]
        csv_file = await client.get("/v1/reports/diversion", params={"format": "csv"}, headers=portal)
        header, newest, _ = csv_file.text.splitlines()
        assert header.endswith(",city") and newest.endswith(",CN-440100")
        response = await client.post(
            "/v1/distributors",
            json={"name": "Nowhere", "regions": ["CN-330000", "CN-999900"]},
            headers=tenant_a.headers(Role.OPERATIONS),
        )
        assert "CN-330000, CN-999900" in assert_problem(response, 422, "validation-error")["detail"]


class TestDiversionReport:
    async def test_the_report_shows_a_distributors_diversions_to_it_alone(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Two scans in Guangdong of items shipped to East China: in East's report and CSV, with the case."""
        await client.post(
            "/v1/aggregations:pack",
            json={"batch_id": str(issued.batch.id), "items_per_case": 10, "gs1_company_prefix": "0614141"},
            headers=tenant_a.headers(),
        )
        east = await distributor(client, tenant_a)
        south = await distributor(client, tenant_a, "South China", ["CN-GD"])
        await ship(client, tenant_a, east, issued.batch.id, 0, 10)
        await ship(client, tenant_a, south, issued.batch.id, 10, 20)
        for n in (1, 2):
            await scan(client, issued.urls[n], location=GUANGZHOU)
        await scan(client, issued.urls[3], location=HANGZHOU)
        await scan(client, issued.urls[11], location=GUANGZHOU)  # South in its own territory
        brand = await client.get("/v1/reports/diversion", headers=tenant_a.headers(Role.OPERATIONS))
        assert brand.status_code == 200, brand.text
        body = brand.json()
        assert [(e["distributor_id"], e["region"], e["position"]) for e in body["items"]] == [
            (east, "CN-GD", 2),
            (east, "CN-GD", 1),
        ]
        assert body["items"][0]["case_sscc"] and body["items"][0]["territory"] == ["CN-SH", "CN-ZJ"]
        assert body["totals"]["by_distributor"] == [{"key": east, "events": 2}]
        assert body["totals"]["by_region"] == [{"key": "CN-GD", "events": 2}]
        assert sum(w["events"] for w in body["totals"]["by_week"]) == 2
        east_portal = await distributor_headers(db, tenant_a, east)
        south_portal = await distributor_headers(db, tenant_a, south)
        assert len((await client.get("/v1/reports/diversion", headers=east_portal)).json()["items"]) == 2
        assert (await client.get("/v1/reports/diversion", headers=south_portal)).json()["items"] == []
        # Asking for another distributor's events does not widen a distributor's scope.
        sneaky = await client.get(
            "/v1/reports/diversion", params={"distributor_id": east}, headers=south_portal
        )
        assert sneaky.json()["items"] == []
        lowercase = await client.get("/v1/reports/diversion", params={"region": "cn-gd"}, headers=east_portal)
        assert len(lowercase.json()["items"]) == 2
        for nowhere in ("XX-YY", "<script>"):
            unknown = await client.get(
                "/v1/reports/diversion", params={"region": nowhere}, headers=east_portal
            )
            assert assert_problem(unknown, 422, "validation-error")["errors"][0]["field"] == "region"
        csv_file = await client.get(
            "/v1/reports/diversion", params={"format": "csv", "limit": 1}, headers=east_portal
        )
        assert csv_file.headers["content-type"] == "text/csv; charset=utf-8"  # the charset once
        header, row = csv_file.text.splitlines()
        assert header.startswith("scanned_at,distributor,territory,region,product")
        assert ",CN-GD," in row and "East China" in row
        assert 'rel="next"' in csv_file.headers["link"]
        rest = await client.get(csv_file.headers["link"].split(">")[0].lstrip("<"), headers=east_portal)
        assert len(rest.text.splitlines()) == 1  # the second file: one row, no header
        assert "link" not in rest.headers  # it ended on the last event: no third file to point at
        # A JSON page's cursor goes back pasted as it is, and the last page points nowhere.
        first_page = (await client.get("/v1/reports/diversion?limit=1", headers=east_portal)).json()
        pasted = await client.get(
            f"/v1/reports/diversion?limit=1&after={first_page['next_cursor']}", headers=east_portal
        )
        assert pasted.status_code == 200, pasted.text
        assert [e["position"] for e in pasted.json()["items"]] == [1] and pasted.json()["next_cursor"] is None
        bad = await client.get(
            "/v1/reports/diversion", params={"since": "2020-01-01T00:00:00Z"}, headers=east_portal
        )
        assert_problem(bad, 422, "validation-error")
        assert_problem(
            await client.get("/v1/reports/diversion", params={"after": "nonsense"}, headers=east_portal),
            422,
            "validation-error",
        )
        marketer_csv = await client.get(
            "/v1/reports/diversion", params={"format": "csv"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert len(marketer_csv.text.splitlines()) == 3


class TestRegions:
    @pytest.mark.parametrize(
        ("lat", "lng", "region"),
        [
            (30.27, 120.16, "CN-ZJ"),
            (31.23, 121.47, "CN-SH"),
            (39.90, 116.40, "CN-BJ"),
            (23.13, 113.26, "CN-GD"),
            (29.65, 91.10, "CN-XZ"),
            (40.80, 111.70, "CN-NM"),
            (48.85, 2.35, "FR-IDF"),
        ],
    )
    def test_a_location_maps_to_its_province(self, lat: float, lng: float, region: str) -> None:
        assert regions.region_at(lat, lng) == region

    def test_a_territory_holds_its_provinces_and_whole_countries(self) -> None:
        assert regions.within("CN-ZJ", ["CN-ZJ", "CN-SH"])
        assert not regions.within("CN-GD", ["CN-ZJ"])
        assert regions.within("CN-GD", ["CN"])
        assert not regions.within("FR-IDF", ["CN"])

    @pytest.mark.parametrize(
        ("lat", "lng", "city"),
        [
            (30.27, 120.16, "CN-330100"),  # Hangzhou
            (29.87, 121.54, "CN-330200"),  # Ningbo
            (23.13, 113.26, "CN-440100"),  # Guangzhou
            (22.54, 114.06, "CN-440300"),  # Shenzhen
            (39.90, 116.40, "CN-110100"),  # Beijing's districts
            (48.85, 2.35, None),  # Paris: no Chinese city
        ],
    )
    def test_a_location_in_china_maps_to_its_city(self, lat: float, lng: float, city: str | None) -> None:
        assert regions.city_at(lat, lng) == city

    def test_a_city_territory_holds_its_city_and_gives_an_unknown_city_the_benefit_of_the_doubt(self) -> None:
        territory = ["CN-330100", "CN-SH"]
        assert regions.within("CN-ZJ", territory, "CN-330100")
        assert not regions.within("CN-ZJ", territory, "CN-330200")
        assert regions.within("CN-ZJ", territory, None)  # somewhere in Zhejiang: no evidence it left
        assert not regions.within("CN-GD", territory, None)
        assert regions.within("CN-SH", territory, "CN-310100")
        assert regions.is_territory("CN-330100") and not regions.is_region("CN-330100")
        assert not regions.is_territory("CN-330000") and not regions.is_territory("CN-330102")

    @given(st.floats(-90, 90), st.floats(-180, 180))
    def test_any_point_gets_a_city_of_its_own_province_or_none(self, lat: float, lng: float) -> None:
        city = regions.city_at(lat, lng)
        assert city is None or (
            regions.is_territory(city) and divisions.province_of(city) == regions.region_at(lat, lng)
        )

    @given(st.floats(-90, 90), st.floats(-180, 180))
    def test_any_point_on_earth_gets_a_region_or_none(self, lat: float, lng: float) -> None:
        found = regions.region_at(lat, lng)
        assert found is None or regions.is_region(found)


class TestBrandReports:
    async def test_scans_by_region_and_batch_scan_rates(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """Heat by region (genuine, diverted, forged), by distributor, and the batch's scan rate."""
        east = await distributor(client, tenant_a)
        await ship(client, tenant_a, east, issued.batch.id, 0, 10)
        await scan(client, issued.urls[0], location=HANGZHOU)
        await scan(client, issued.urls[0], location=HANGZHOU)
        await scan(client, issued.urls[1], location=GUANGZHOU)
        await scan(client, issued.urls[50], location=GUANGZHOU)  # not activated
        forged = issued.urls[2][:-4] + ("AAAA" if not issued.urls[2].endswith("AAAA") else "BBBB")
        await scan(client, forged, location=GUANGZHOU)
        by_region = await client.get(
            "/v1/reports/scans", params={"by": "region"}, headers=tenant_a.headers(Role.MARKETER)
        )
        assert by_region.status_code == 200, by_region.text
        rows = {row["key"]: row for row in by_region.json()}
        assert (rows["CN-ZJ"]["first_scans"], rows["CN-ZJ"]["repeat_scans"]) == (1, 1)
        assert (rows["CN-GD"]["diverted"], rows["CN-GD"]["not_activated"], rows["CN-GD"]["counterfeit"]) == (
            1,
            1,
            1,
        )
        by_distributor = await client.get(
            "/v1/reports/scans", params={"by": "distributor"}, headers=tenant_a.headers()
        )
        assert {row["key"]: (row["name"], row["scans"]) for row in by_distributor.json()} == {
            east: ("East China", 3),
            "none": (None, 1),
        }
        # The CSV names the distributor beside its id, as the diversion CSV names it.
        distributor_csv = await client.get(
            "/v1/reports/scans", params={"by": "distributor", "format": "csv"}, headers=tenant_a.headers()
        )
        lines = distributor_csv.text.splitlines()
        assert lines[0].startswith("distributor,distributor_name,scans,first_scans")
        assert set(lines[1:]) == {f"{east},East China,3,2,1,0,0,1,0", "none,,1,0,0,0,1,0,0"}
        by_product = await client.get(
            "/v1/reports/scans", params={"by": "product", "format": "csv"}, headers=tenant_a.headers()
        )
        assert by_product.text.splitlines()[1] == f"{issued.product.id},{issued.product.name},4,2,1,0,1,1,0"
        portal = await distributor_headers(db, tenant_a, east)
        mine = await client.get("/v1/reports/scans", params={"by": "week"}, headers=portal)
        assert sum(row["scans"] for row in mine.json()) == 3  # its items only, no forgeries
        csv_file = await client.get(
            "/v1/reports/scans", params={"by": "region", "format": "csv"}, headers=tenant_a.headers()
        )
        assert csv_file.text.splitlines()[0].startswith("region,scans,first_scans")
        exported = await client.get(
            "/v1/audit", params={"action": "report.scans_export"}, headers=tenant_a.headers()
        )
        exports = sorted(e["after"]["by"] for e in exported.json()["items"])
        assert exports == ["distributor", "product", "region"]
        rates = await client.get("/v1/reports/batches", headers=tenant_a.headers(Role.OPERATIONS))
        [rate] = rates.json()["items"]
        assert (rate["activated"], rate["scanned"], rate["rate"]) == (10, 2, 0.2)
        assert (await client.get("/v1/reports/batches", headers=portal)).status_code == 403


class TestIpDatabase:
    @pytest.fixture(params=["mmdb", "xdb"])
    def settings(self, settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
        """Behind a proxy, with an IP database (MaxMind's format or ip2region's) that puts 203.0.113.0/24
        in Guangdong and 192.0.2.0/24 in Ningbo, Zhejiang."""
        path = tmp_path / f"regions.{request.param}"
        if request.param == "xdb":
            write_xdb(
                path,
                4,
                [
                    ("192.0.2.0", "192.0.2.255", "中国|浙江省|宁波市|电信|CN"),
                    ("203.0.113.0", "203.0.113.255", "中国|广东省|0|电信|CN"),
                ],
            )
            return msgspec.structs.replace(settings, ip_databases=(path,), trust_forwarded_for=True)
        writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City")
        record = {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "GD"}]}
        writer.insert_network(IPSet(["203.0.113.0/24"]), record)
        # A city record (its coordinates place it in Ningbo, Zhejiang).
        ningbo = {
            "country": {"iso_code": "CN"},
            "subdivisions": [{"iso_code": "ZJ"}],
            "location": {"latitude": 29.87, "longitude": 121.54},
        }
        writer.insert_network(IPSet(["192.0.2.0/24"]), ningbo)
        writer.to_db_file(str(path))
        return msgspec.structs.replace(settings, ip_databases=(path,), trust_forwarded_for=True)

    async def test_without_a_location_the_ip_database_places_the_scan(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """No location shared: the IP says Guangdong, outside East China's territory: a diversion."""
        east = await distributor(client, tenant_a)
        await ship(client, tenant_a, east, issued.batch.id, 0, 10)
        for n, ip in enumerate(["203.0.113.20", "198.51.100.7"]):
            client.cookies.clear()
            body = {"code": issued.urls[n], "device_id": f"dev-{uuid.uuid4().hex}"}
            response = await client.post("/v1/scans", json=body, headers={"X-Forwarded-For": ip})
            assert response.status_code == 200, response.text
        await scan(client, issued.urls[2], location=HANGZHOU)  # a shared location wins over the IP
        cur = await db.execute("SELECT region, diverted FROM scans ORDER BY scanned_at")
        assert await cur.fetchall() == [("CN-GD", True), (None, False), ("CN-ZJ", False)]

    async def test_the_ip_databases_coordinates_place_a_scan_in_a_city(
        self,
        client: AsyncTestClient[Any],
        tenant_a: Tenant,
        issued: IssuedBatch,
        db: psycopg.AsyncConnection[Any],
    ) -> None:
        """An address in Ningbo: outside Hangzhou's city territory though inside its province."""
        hangzhou = await distributor(client, tenant_a, "Hangzhou", ["CN-330100"])
        ningbo = await distributor(client, tenant_a, "Ningbo", ["CN-330200"])
        await ship(client, tenant_a, hangzhou, issued.batch.id, 0, 5)
        await ship(client, tenant_a, ningbo, issued.batch.id, 5, 10)
        for url in (issued.urls[0], issued.urls[5]):
            client.cookies.clear()
            body = {"code": url, "device_id": f"dev-{uuid.uuid4().hex}"}
            response = await client.post("/v1/scans", json=body, headers={"X-Forwarded-For": "192.0.2.9"})
            assert response.status_code == 200, response.text
        cur = await db.execute("SELECT region, diverted FROM scans ORDER BY scanned_at")
        assert await cur.fetchall() == [("CN-ZJ", True), ("CN-ZJ", False)]
