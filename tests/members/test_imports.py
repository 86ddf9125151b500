"""Member list import: encodings, normalisation, duplicates, merges, dry runs, error files, idempotence."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from campaigns.members import imports
from service.models import Role
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.fixtures_codes import issue_batch
from tests.members.test_member_admin import enrolled_member

LIST = """手机号,姓名,生日,积分,性别
138 0013 8001,王小明,1990/5/1,1200,男
+86 139-0013-8002,李华,19850203,300,女
008613900138003,,2000年12月31日,0,
13900138002,李华重复,1985-02-03,999,女
12345,坏号码,1990-01-01,10,
13900138004,未来,2999-01-01,5,
13900138005,负分,,-3,
13900138006,,,,
"""


def post_csv(client: AsyncTestClient[Any], tenant: Tenant, body: bytes, **params: Any) -> Any:
    return client.post(
        "/v1/member-imports",
        content=body,
        params=params,
        headers={**tenant.headers(Role.BRAND_ADMIN), "Content-Type": "text/csv"},
    )


class TestImport:
    @pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
    async def test_import_normalises_reports_and_is_idempotent(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant, encoding: str
    ) -> None:
        body = LIST.encode(encoding)
        checked = (await post_csv(client, tenant_a, body, dry_run="true")).json()
        assert (checked["status"], checked["created"], checked["duplicates"], checked["rejected"]) == (
            "checked",
            4,
            1,
            3,
        )
        cur = await db.execute("SELECT count(*) FROM members")
        assert await cur.fetchone() == (0,)  # a dry run writes nothing

        imported = await post_csv(client, tenant_a, body, filename="crm.csv")
        assert imported.status_code == 200, imported.text
        report = imported.json()
        assert (report["status"], report["rows"], report["created"], report["merged"]) == ("done", 8, 4, 0)
        assert (report["duplicates"], report["rejected"], report["points_credited"]) == (1, 3, 1500)
        assert {(e["row"], e["field"]) for e in report["errors"]} == {
            (4, "phone"),
            (5, "phone"),
            (6, "birthday"),
            (7, "points"),
        }
        found = await client.post(
            "/v1/members:search",
            json={"phone": "13800138001"},
            headers=tenant_a.headers(Role.CUSTOMER_SERVICE),
        )
        member = found.json()[0]
        assert (member["name"], member["gender"], member["birthday"], member["points_balance"]) == (
            "王小明",
            "male",
            "1990-05-01",
            1200,
        )
        assert member["enrolled"] is True

        again = (await post_csv(client, tenant_a, body)).json()
        assert (again["created"], again["merged"], again["skipped"], again["points_credited"]) == (0, 0, 8, 0)
        cur = await db.execute("SELECT count(*), (SELECT sum(amount) FROM points_ledger) FROM members")
        assert await cur.fetchone() == (4, 1500)

        errors = await client.get(
            f"/v1/member-imports/{report['id']}/errors.csv", headers=tenant_a.headers(Role.BRAND_ADMIN)
        )
        rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
        assert [r[0] for r in rows[1:]] == ["4", "5", "6", "7"]
        assert rows[2][3] == "12345" and "phone" in rows[2][2]  # the original cells, to correct and resend
        # The sealed bytes, not their hex text: a random ciphertext's hex holds "12345" one time in a
        # thousand or so; its bytes hold b"12345" practically never, unless stored in the clear.
        cur = await db.execute("SELECT raw_sealed FROM member_import_rows WHERE raw_sealed IS NOT NULL")
        sealed = [bytes(row[0]) for row in await cur.fetchall()]
        assert sealed and not any(b"12345" in cells for cells in sealed)

    async def test_a_second_list_merges_without_overwriting_or_crediting_twice(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        settings: Settings,
        tenant_a: Tenant,
    ) -> None:
        issued = await issue_batch(db, settings, tenant_a.brand_id, quantity=3)
        scanned = await enrolled_member(client, db, issued.urls[0], "device-import-1")  # +8613800138000
        first = b"phone,name,points\n13800138000,Ann,100\n13900139000,Bob,50\n"
        second = b"phone,name,birthday,points\n13800138000,Annie,1991-01-01,100\n13900139000,,1980-02-02,70\n"
        assert (await post_csv(client, tenant_a, first)).json()["merged"] == 1
        report = (await post_csv(client, tenant_a, second)).json()
        assert (report["created"], report["merged"], report["points_credited"]) == (0, 2, 0)
        cs = tenant_a.headers(Role.CUSTOMER_SERVICE)
        ann = (await client.get(f"/v1/members/{scanned}", headers=cs)).json()
        assert (ann["name"], ann["birthday"], ann["points_balance"]) == ("Ann", "1991-01-01", 100)

    async def test_a_rejected_row_names_every_fault_in_the_answer_and_the_error_file(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """A row with a future birthday, points `abc`, gender `x` and region `zz` lists all four faults (not
        the first one found), in the import's answer and in errors.csv; a bad phone does not hide the rest.
        The row corrected from that list then imports."""
        body = (
            "phone,name,birthday,points,gender,region\n"
            "13900138001,Ann,1990-01-01,10,f,CN-ZJ\n"
            "13900138005,Eve,2999-01-01,abc,x,zz\n"
            "12345,Bob,1990-02-30,7,m,CN-GD\n"
        )
        report = (await post_csv(client, tenant_a, body.encode())).json()
        assert (report["created"], report["rejected"]) == (1, 2), report
        assert [(e["row"], e["field"]) for e in report["errors"]] == [
            (2, "birthday"),
            (2, "points"),
            (2, "gender"),
            (2, "region"),
            (3, "phone"),
            (3, "birthday"),
        ]
        assert "future" in report["errors"][0]["message"]
        errors = await client.get(
            f"/v1/member-imports/{report['id']}/errors.csv", headers=tenant_a.headers(Role.BRAND_ADMIN)
        )
        rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
        assert [(r[0], r[1]) for r in rows[1:]] == [("2", "rejected"), ("3", "rejected")]
        faults = rows[1][2].split("; ")
        assert [f.split(":")[0] for f in faults] == ["birthday", "points", "gender", "region"], faults
        assert [f.split(":")[0] for f in rows[2][2].split("; ")] == ["phone", "birthday"]
        fixed = "phone,name,birthday,points,gender,region\n13900138005,Eve,1990-01-01,12,f,CN-ZJ\n"
        again = (await post_csv(client, tenant_a, fixed.encode())).json()
        assert (again["created"], again["rejected"], again["errors"]) == (1, 0, [])

    async def test_bad_files_are_refused_whole(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        for body in (b"\xff\xfe\x00\x00garbage\x81", b"", b"name,points\nAnn,5\n"):
            refused = await post_csv(client, tenant_a, body)
            assert_problem(refused, 422, "validation-error")
        cur = await db.execute("SELECT count(*) FROM member_imports")
        assert await cur.fetchone() == (0,)
        report = (await post_csv(client, tenant_a, b"phone\n13800138000\n")).json()
        foreign = await client.get(
            f"/v1/member-imports/{report['id']}/errors.csv", headers=tenant_b.headers(Role.BRAND_ADMIN)
        )
        assert foreign.status_code == 404
        marketer = await client.post(
            "/v1/member-imports", content=b"phone\n13800138000\n", headers=tenant_a.headers(Role.MARKETER)
        )
        assert marketer.status_code == 403
        missing = await client.get(f"/v1/member-imports/{uuid.uuid4()}", headers=tenant_a.headers())
        assert_problem(missing, 404, "not-found")


# GB2312's Chinese characters (both levels: names use second-level ones too), as its codec defines them.
GB2312 = "".join(
    ch
    for lead in range(0xB0, 0xF8)
    for trail in range(0xA1, 0xFF)
    if (ch := bytes((lead, trail)).decode("gb2312", errors="ignore"))
)


class TestEncodings:
    async def test_a_big5_file_keeps_its_traditional_names(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        """Excel in Taiwan and Hong Kong saves CSV as Big5, whose bytes GBK also reads, as other characters:
        the names must come in as written, not garbled."""
        names = ["陳家豪", "陳嘉偉", "黃詩雅", "梁嘉偉"]  # each character also reads as GBK, as others
        body = "phone,name\n" + "".join(f"1390013800{n},{name}\n" for n, name in enumerate(names))
        imported = await post_csv(client, tenant_a, body.encode("big5"))
        assert imported.status_code == 200, imported.text
        assert imported.json()["created"] == 4, imported.text
        for n, name in enumerate(names):
            found = await client.post(
                "/v1/members:search",
                json={"phone": f"1390013800{n}"},
                headers=tenant_a.headers(Role.CUSTOMER_SERVICE),
            )
            assert found.json()[0]["name"] == name

    async def test_a_file_in_another_encoding_is_refused_whole(
        self, client: AsyncTestClient[Any], tenant_a: Tenant
    ) -> None:
        refused = await post_csv(client, tenant_a, "phone,name\n13900138001,José Müller\n".encode("latin-1"))
        assert_problem(refused, 422, "validation-error")
        assert refused.json()["errors"][0]["field"] == "file"

    @given(st.lists(st.text(alphabet=GB2312, min_size=1, max_size=4), min_size=1, max_size=20))
    def test_gbk_files_always_read_as_written(self, names: list[str]) -> None:
        """Mainland files (GBK) read as written, whatever their names: every character the Big5 reading
        of a GBK file counts as everyday Chinese, the GBK reading counts too."""
        text = "phone,name\n" + "".join(f"139{n:08d},{name}\n" for n, name in enumerate(names))
        data = text.encode("gbk")
        # A few characters (一 is D2 BB) can also be valid UTF-8, which is read first, as it must be: a
        # UTF-8 file is never ambiguous, and its bytes often read as GBK too (é as 茅).
        assume(not _is_utf8(data))
        assert imports.decode(data) == text


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
