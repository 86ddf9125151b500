"""Region codes are checked as scans record them: a rule that could never match a scan is a 422."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from antifraud import regions
from campaigns.members import imports
from service.models import Role
from tests.api.test_errors import assert_problem
from tests.campaigns.test_campaign_api import points_body
from tests.conftest import Tenant


@pytest.mark.parametrize("code", ["CN-ZJ", "CN", "HK", "TW", "US-CA"])
def test_regions_as_scans_record_them(code: str) -> None:
    assert regions.is_region(code)


@pytest.mark.parametrize("code", ["cn-zj", "Cn-Zj", "cn", "CN-HK", "CN-MO", "CN-TW", "CN-XX", ""])
def test_codes_no_scan_carries(code: str) -> None:
    """pycountry finds `cn-zj` and `CN-HK`, but a scan in Hangzhou is `CN-ZJ` and one in Hong Kong `HK`."""
    assert not regions.is_region(code)
    assert not regions.is_territory(code)


def test_an_imported_spreadsheet_region_is_upper_cased() -> None:
    assert imports._region("cn-zj") == "CN-ZJ"


async def test_every_region_rule_refuses_lower_case(client: AsyncTestClient[Any], tenant_a: Tenant) -> None:
    marketer = tenant_a.headers(Role.MARKETER)
    eligibility = {**points_body()["eligibility"], "regions": ["cn-zj"], "member_tiers": []}
    campaign = await client.post("/v1/campaigns", json=points_body(eligibility=eligibility), headers=marketer)
    assert_problem(campaign, 422, "validation-error")
    counted = await client.post("/v1/segments:count", json={"regions": ["cn-zj"]}, headers=marketer)
    assert_problem(counted, 422, "validation-error")
    tag = await client.post("/v1/tags", json={"name": "zj", "rule": {"region": "cn-zj"}}, headers=marketer)
    assert_problem(tag, 422, "validation-error")
    distributor = await client.post(
        "/v1/distributors", json={"name": "HK Trading", "regions": ["CN-HK"]}, headers=tenant_a.headers()
    )
    assert_problem(distributor, 422, "validation-error")
    upper = await client.post("/v1/segments:count", json={"regions": ["CN-ZJ"]}, headers=marketer)
    assert upper.status_code == 200, upper.text
