"""Code issuance over HTTP: products, batches, keys, exports and aggregation, with their bad inputs."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import biip
import psycopg
import pytest
import pyzipper  # type: ignore[import-untyped]
from litestar.testing import AsyncTestClient

from codegen.gtin import check_digit, make_sscc
from service.models import Role
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant

GTIN = "09506000134352"


async def make_product(
    client: AsyncTestClient[Any], tenant: Tenant, gtin: str | None = GTIN
) -> dict[str, Any]:
    body = {"name": "Lager 500ml", "gtin": gtin, "facts": {"origin": "Qingdao"}}
    response = await client.post("/v1/products", json=body, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_batch(
    client: AsyncTestClient[Any], tenant: Tenant, product_id: str, quantity: int = 50
) -> Any:
    response = await client.post(
        "/v1/batches",
        # Live at once: these tests scan codes without shipping them (tests/antifraud ships).
        json={"product_id": product_id, "quantity": quantity, "lot": "L1", "activation": "on_issue"},
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    return response.json()


class TestProducts:
    async def test_crud_and_gtin_normalisation(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """A GTIN-13 is stored as GTIN-14; products list, patch and delete (while batch-free)."""
        product = await make_product(client, tenant_a, gtin="9506000134352")
        assert product["gtin"] == GTIN
        patched = await client.patch(
            f"/v1/products/{product['id']}", json={"name": "Lager 330ml"}, headers=tenant_a.headers()
        )
        assert patched.json()["name"] == "Lager 330ml"
        listed = (await client.get("/v1/products", headers=tenant_a.headers())).json()
        assert [p["id"] for p in listed["items"]] == [product["id"]]
        assert (
            await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers())
        ).status_code == 204

    @pytest.mark.parametrize(
        ("gtin", "status"), [("9506000134353", 422), ("12345", 422), ("abcdefghijklm", 422)]
    )
    async def test_bad_gtins_name_the_field(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, gtin: str, status: int
    ) -> None:
        """A wrong check digit or length is a 422 naming `gtin`."""
        response = await client.post(
            "/v1/products", json={"name": "x", "gtin": gtin}, headers=tenant_a.headers()
        )
        problem = assert_problem(response, status, "validation-error")
        assert problem["errors"][0]["field"] == "gtin"

    async def test_duplicate_gtin_conflicts(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        await make_product(client, tenant_a)
        response = await client.post(
            "/v1/products", json={"name": "x", "gtin": GTIN}, headers=tenant_a.headers()
        )
        assert assert_problem(response, 409, "conflict")["errors"][0]["field"] == "gtin"

    async def test_a_product_with_batches_cannot_be_deleted(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        product = await make_product(client, tenant_a)
        await make_batch(client, tenant_a, product["id"])
        response = await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers())
        assert_problem(response, 409, "conflict")

    async def test_a_product_a_segment_or_rule_tag_names_cannot_be_deleted(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Gone, it would leave the segment and the tag naming an unknown product (a 422 on every count)."""
        product = await make_product(client, tenant_a)
        named = {"product_ids": [product["id"]], "min_scans": 1}
        await client.post("/v1/tags", json={"name": "lager fans", "rule": named}, headers=tenant_a.headers())
        segment = await client.post(
            "/v1/segments",
            json={"name": "lager buyers", "filter": {"products_any": [product["id"]]}},
            headers=tenant_a.headers(),
        )
        campaign = {
            "name": "Lager points",
            "kind": "points",
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-02-01T00:00:00Z",
            "time_zone": "Asia/Shanghai",
            "budget_cents": 100_000,
            "eligibility": {"product_ids": [product["id"]]},
            "points_reward": {"points": 10},
        }
        drafted = await client.post("/v1/campaigns", json=campaign, headers=tenant_a.headers())
        assert drafted.status_code == 201, drafted.text
        refused = await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers())
        problem = assert_problem(refused, 409, "conflict")
        for named_by in ("campaign 'Lager points'", "segment 'lager buyers'", "tag 'lager fans'"):
            assert named_by in problem["detail"]
        narrowed = await client.patch(
            f"/v1/campaigns/{drafted.json()['id']}", json={"eligibility": {}}, headers=tenant_a.headers()
        )
        assert narrowed.status_code == 200, narrowed.text
        await client.delete(f"/v1/segments/{segment.json()['id']}", headers=tenant_a.headers())
        await client.delete("/v1/tags/lager%20fans", headers=tenant_a.headers())
        deleted = await client.delete(f"/v1/products/{product['id']}", headers=tenant_a.headers())
        assert deleted.status_code == 204, deleted.text


class TestBatches:
    @pytest.mark.parametrize("quantity", [0, 100_000_001, -5])
    async def test_quantity_limits(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, quantity: int
    ) -> None:
        """Quantity is 1..100,000,000."""
        product = await make_product(client, tenant_a)
        response = await client.post(
            "/v1/batches",
            json={"product_id": product["id"], "quantity": quantity},
            headers=tenant_a.headers(),
        )
        assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == "quantity"

    async def test_unknown_or_foreign_product_is_404(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """A product of another brand is as unknown as a made-up one."""
        foreign = await make_product(client, tenant_b)
        for product_id in (foreign["id"], "00000000-0000-4000-8000-000000000000"):
            response = await client.post(
                "/v1/batches", json={"product_id": product_id, "quantity": 5}, headers=tenant_a.headers()
            )
            assert assert_problem(response, 404, "not-found")["errors"][0]["field"] == "product_id"

    async def test_a_hundred_million_codes_is_one_row(
        self, client: AsyncTestClient[Any], tenant_a: Tenant, db: psycopg.AsyncConnection[Any]
    ) -> None:
        """Issuing reserves an index range; nothing is written per code. A commissioning event is recorded."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=100_000_000)
        second = await make_batch(client, tenant_a, product["id"], quantity=10)
        assert second["start_index"] == batch["start_index"] + 100_000_000
        cur = await db.execute("SELECT count(*) FROM batches")
        assert await cur.fetchone() == (2,)
        cur = await db.execute("SELECT biz_step FROM trace_events WHERE batch_id = %s", (batch["id"],))
        assert await cur.fetchall() == [("commissioning",)]


class TestExports:
    async def test_csv_export_parses_as_gs1_digital_link(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Every exported URL parses under the independent biip parser with our GTIN and a 20-char serial."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=40)
        response = await client.get(f"/v1/batches/{batch['id']}/codes?format=csv", headers=tenant_a.headers())
        assert response.status_code == 200, response.text
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(r["index"]) for r in rows] == list(range(40))
        assert len({r["serial"] for r in rows}) == 40
        for row in rows[:10]:
            parsed = biip.parse(row["url"])
            assert parsed.gs1_digital_link_uri is not None
            element_strings = parsed.gs1_digital_link_uri.element_strings
            values = {es.ai.ai: es.value for es in element_strings}
            assert values["01"] == GTIN
            assert values["21"] == row["serial"]
        batch_now = (await client.get(f"/v1/batches/{batch['id']}", headers=tenant_a.headers())).json()
        assert batch_now["status"] == "exported"
        audit = (await client.get("/v1/audit?action=batch.export", headers=tenant_a.headers())).json()[
            "items"
        ]
        assert audit[0]["after"] == {"format": "csv", "start": 0, "stop": 40, "encrypted": False}

    async def test_ranges_resume_and_bad_ranges_are_422(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=30)
        url = f"/v1/batches/{batch['id']}/codes"
        whole = (await client.get(f"{url}?format=txt", headers=tenant_a.headers())).text.splitlines()
        part = (
            await client.get(f"{url}?format=txt&start=10&stop=20", headers=tenant_a.headers())
        ).text.splitlines()
        assert part == whole[10:20]
        for query, field in (("start=30", "start"), ("start=5&stop=40", "stop"), ("start=5&stop=5", "stop")):
            problem = assert_problem(
                await client.get(f"{url}?{query}", headers=tenant_a.headers()), 422, "validation-error"
            )
            assert problem["errors"][0]["field"] == field

    async def test_voided_batch_cannot_be_exported(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"])
        await client.post(f"/v1/batches/{batch['id']}/void", headers=tenant_a.headers())
        response = await client.get(f"/v1/batches/{batch['id']}/codes", headers=tenant_a.headers())
        assert_problem(response, 409, "conflict")

    async def test_encrypted_zip_and_qr_zip_and_pdf(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """AES ZIP opens with the password; the SVG ZIP holds one image per code; PDF is a PDF."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=12)
        url = f"/v1/batches/{batch['id']}/codes"
        headers = {**tenant_a.headers(), "X-Export-Password": "correct horse"}
        encrypted = await client.get(f"{url}?format=csv", headers=headers)
        assert encrypted.headers["content-type"] == "application/zip"
        with pyzipper.AESZipFile(io.BytesIO(encrypted.content)) as archive:
            archive.setpassword(b"correct horse")
            (name,) = archive.namelist()
            assert archive.read(name).decode().startswith("index,serial,url")
        svgs = await client.get(f"{url}?format=zip-svg", headers=tenant_a.headers())
        with zipfile.ZipFile(io.BytesIO(svgs.content)) as archive:
            assert len(archive.namelist()) == 12
        sheet = await client.get(f"{url}?format=pdf", headers=tenant_a.headers())
        assert sheet.content.startswith(b"%PDF")

    async def test_marketers_cannot_export(self, client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
        """Print files are the industry's main leak: only brand admins and operations export."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"])
        response = await client.get(
            f"/v1/batches/{batch['id']}/codes", headers=tenant_a.headers(Role.MARKETER)
        )
        assert_problem(response, 403, "forbidden")


class TestKeys:
    async def test_rotation_keeps_old_codes_valid_and_new_batches_use_the_new_key(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        product = await make_product(client, tenant_a)
        old = await make_batch(client, tenant_a, product["id"], quantity=5)
        old_url = (
            await client.get(f"/v1/batches/{old['id']}/codes?format=txt", headers=tenant_a.headers())
        ).text
        rotated = await client.post(f"/v1/brands/{tenant_a.brand_id}/keys:rotate", headers=tenant_a.headers())
        assert rotated.status_code == 201, rotated.text
        assert [k["current"] for k in rotated.json()] == [False, True]
        new = await make_batch(client, tenant_a, product["id"], quantity=5)
        assert (old["key_id"], new["key_id"]) == (0, 1)
        scan = await client.post(
            "/v1/scans", json={"code": old_url.splitlines()[0], "device_id": "device-rot-1"}
        )
        assert scan.json()["verdict"] == "genuine_first"
        jwks = (await client.get(f"/v1/brands/{tenant_a.brand_id}/public-keys")).json()
        assert [k["kty"] for k in jwks["keys"]] == ["OKP", "OKP"]


class TestAggregation:
    async def test_a_voided_batch_is_never_packed(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Its codes can never be shipped nor come alive: a case of them would only mislead."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=10)
        await client.post(f"/v1/batches/{batch['id']}/void", headers=tenant_a.headers())
        body = {"batch_id": batch["id"], "items_per_case": 2, "gs1_company_prefix": "0614141"}
        packed = await client.post("/v1/aggregations:pack", json=body, headers=tenant_a.headers())
        assert assert_problem(packed, 409, "conflict")["errors"][0]["field"] == "batch_id"

    async def test_regular_packing_and_parent_chain(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """24 per case, 2 cases a pallet: an item's parents are its case, then pallet; CSV shows them."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=100)
        packed = await client.post(
            "/v1/aggregations:pack",
            json={
                "batch_id": batch["id"],
                "items_per_case": 24,
                "cases_per_pallet": 2,
                "gs1_company_prefix": "0614141",
            },
            headers=tenant_a.headers(),
        )
        assert packed.status_code == 201, packed.text
        assert len(packed.json()) == 3  # 5 cases -> 3 pallets
        parents = (
            await client.get(f"/v1/batches/{batch['id']}/items/30/parents", headers=tenant_a.headers())
        ).json()
        assert [p["level"] for p in parents] == ["case", "pallet"]
        case = (
            await client.get(f"/v1/aggregations?sscc={parents[0]['sscc']}", headers=tenant_a.headers())
        ).json()
        assert case["items"] == [{"batch_id": batch["id"], "start": 24, "stop": 48}]
        label = biip.parse(case["url"]).gs1_digital_link_uri
        assert label is not None
        assert {es.ai.ai: es.value for es in label.element_strings}["00"] == parents[0]["sscc"]
        rows = list(
            csv.DictReader(
                io.StringIO(
                    (await client.get(f"/v1/batches/{batch['id']}/codes", headers=tenant_a.headers())).text
                )
            )
        )
        assert rows[30]["parent"] == parents[0]["sscc"]

    async def test_regular_packing_passes_over_numbers_already_used(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A case packed by hand holds a number the generator would give next: it is passed over (the
        packing failed on it, every time, before)."""
        product = await make_product(client, tenant_a)
        by_hand = await make_batch(client, tenant_a, product["id"], quantity=4)
        hand_packed = make_sscc(0, "0614142", "000000001")
        case = await client.post(
            "/v1/aggregations",
            json={
                "level": "case",
                "sscc": hand_packed,
                "items": [{"batch_id": by_hand["id"], "start": 0, "stop": 4}],
            },
            headers=tenant_a.headers(),
        )
        assert case.status_code == 201, case.text
        batch = await make_batch(client, tenant_a, product["id"], quantity=6)
        body = {"batch_id": batch["id"], "items_per_case": 2, "gs1_company_prefix": "0614142"}
        packed = await client.post("/v1/aggregations:pack", json=body, headers=tenant_a.headers())
        assert packed.status_code == 201, packed.text
        assert [aggregate["sscc"] for aggregate in packed.json()] == [
            make_sscc(0, "0614142", ref) for ref in ("000000000", "000000002", "000000003")
        ]

    async def test_a_big_batch_is_packed_in_parts(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """100 million items one a case would be 100 million rows built in one request (it took the worker
        down): a request packs at most MAX_PACKED cases and pallets, a range of the batch at a time."""
        product = await make_product(client, tenant_a)
        huge = await make_batch(client, tenant_a, product["id"], quantity=100_000_000)
        body = {"batch_id": huge["id"], "items_per_case": 1, "gs1_company_prefix": "0614143"}
        whole = await client.post("/v1/aggregations:pack", json=body, headers=tenant_a.headers())
        assert "in parts" in assert_problem(whole, 422, "validation-error")["detail"]
        batch = await make_batch(client, tenant_a, product["id"], quantity=50)
        parts = []
        for start, stop in ((0, 20), (20, 50)):
            part = {**body, "batch_id": batch["id"], "items_per_case": 10, "start": start, "stop": stop}
            packed = await client.post("/v1/aggregations:pack", json=part, headers=tenant_a.headers())
            assert packed.status_code == 201, packed.text
            parts.append(len(packed.json()))
        assert parts == [2, 3]
        parents = await client.get(f"/v1/batches/{batch['id']}/items/45/parents", headers=tenant_a.headers())
        case = (
            await client.get(f"/v1/aggregations?sscc={parents.json()[0]['sscc']}", headers=tenant_a.headers())
        ).json()
        assert case["items"] == [{"batch_id": batch["id"], "start": 40, "stop": 50}]
        for start, stop in ((40, 40), (0, 51)):
            bad = {**body, "batch_id": batch["id"], "start": start, "stop": stop}
            refused = await client.post("/v1/aggregations:pack", json=bad, headers=tenant_a.headers())
            assert_problem(refused, 422, "validation-error")

    async def test_packing_station_cases_and_pallets(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A case from ranges and scanned serials, then a pallet of it; double packing conflicts."""
        product = await make_product(client, tenant_a)
        batch = await make_batch(client, tenant_a, product["id"], quantity=20)
        urls = (
            await client.get(f"/v1/batches/{batch['id']}/codes?format=txt", headers=tenant_a.headers())
        ).text
        case = await client.post(
            "/v1/aggregations",
            json={
                "level": "case",
                "sscc": "106141410000000019",
                "items": [{"batch_id": batch["id"], "start": 0, "stop": 5}],
                "serials": [urls.splitlines()[10]],
            },
            headers=tenant_a.headers(),
        )
        assert case.status_code == 201, case.text
        assert {(i["start"], i["stop"]) for i in case.json()["items"]} == {(0, 5), (10, 11)}
        again = await client.post(
            "/v1/aggregations",
            json={
                "level": "case",
                "sscc": "106141410000000026",
                "items": [{"batch_id": batch["id"], "start": 4, "stop": 6}],
            },
            headers=tenant_a.headers(),
        )
        assert_problem(again, 409, "conflict")
        pallet = await client.post(
            "/v1/aggregations",
            json={"level": "pallet", "sscc": "106141410000000033", "children_sscc": ["106141410000000019"]},
            headers=tenant_a.headers(),
        )
        assert pallet.status_code == 201, pallet.text
        assert [c["sscc"] for c in pallet.json()["children"]] == ["106141410000000019"]
        bad = await client.post(
            "/v1/aggregations",
            json={"level": "case", "sscc": "106141410000000010"},
            headers=tenant_a.headers(),
        )
        assert assert_problem(bad, 422, "validation-error")["errors"][0]["field"] == "sscc"
        for empty, field in (
            ({"level": "pallet", "sscc": "106141410000007773", "children_sscc": []}, "children_sscc"),
            ({"level": "case", "sscc": "106141410000007773"}, "items"),
        ):
            refused = await client.post("/v1/aggregations", json=empty, headers=tenant_a.headers())
            assert assert_problem(refused, 422, "validation-error")["errors"][0]["field"] == field


def gtin13(payload: str) -> str:
    return payload + str(check_digit(payload))


class TestGs1CompanyPrefixes:
    async def test_a_gtin_under_another_brands_prefix_is_refused(
        self, client: AsyncTestClient[Any], platform_token: str, tenant_a: Tenant, tenant_b: Tenant
    ) -> None:
        """Once a platform admin records brand A's GS1 company prefix, brand B cannot register (squat) a
        GTIN under it; brand A still can, and B keeps GTINs under prefixes nobody claimed."""
        platform = {"Authorization": f"Bearer {platform_token}"}
        b_product = await make_product(client, tenant_b, gtin=gtin13("692000000001"))
        path = f"/v1/brands/{tenant_a.brand_id}/gs1-company-prefixes"
        by_brand_admin = await client.put(path, json={"prefixes": ["690123"]}, headers=tenant_a.headers())
        assert by_brand_admin.status_code == 403
        for bad in ("123", "6901a", "1234567890123"):
            refused = await client.put(path, json={"prefixes": [bad]}, headers=platform)
            assert_problem(refused, 422, "validation-error")
        covers_b = await client.put(path, json={"prefixes": ["690123", "6920"]}, headers=platform)
        assert "1 products of other brands" in assert_problem(covers_b, 409, "conflict")["detail"]
        claimed = await client.put(path, json={"prefixes": ["690123", "690123"]}, headers=platform)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["gs1_company_prefixes"] == ["690123"]
        brand = await client.get(f"/v1/brands/{tenant_a.brand_id}", headers=tenant_a.headers(Role.MARKETER))
        assert brand.json()["gs1_company_prefixes"] == ["690123"]

        squatted = await client.post(
            "/v1/products",
            json={"name": "Copycat", "gtin": gtin13("690123456789")},
            headers=tenant_b.headers(),
        )
        assert assert_problem(squatted, 409, "conflict")["errors"][0]["field"] == "gtin"
        owned = await make_product(client, tenant_a, gtin=gtin13("690123456789"))
        assert owned["gtin"] == "0" + gtin13("690123456789")
        elsewhere = await make_product(client, tenant_b, gtin=gtin13("690200000003"))
        assert elsewhere["brand_id"] == str(tenant_b.brand_id)

        b_path = f"/v1/brands/{tenant_b.brand_id}/gs1-company-prefixes"
        for overlapping in ("69012", "6901234"):
            refused = await client.put(b_path, json={"prefixes": [overlapping]}, headers=platform)
            assert "690123" in assert_problem(refused, 409, "conflict")["detail"]
        assert (await client.put(b_path, json={"prefixes": ["6920"]}, headers=platform)).status_code == 200
        assert b_product["gtin"].startswith("0692")
