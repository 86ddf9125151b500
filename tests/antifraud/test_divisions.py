"""The offline division table: a point's prefecture-level city, consistent with the IP databases' names."""

from __future__ import annotations

import csv
from importlib import resources

from antifraud import divisions, regions


def _rows() -> list[dict[str, str]]:
    data = resources.files("antifraud").joinpath("data/cn_divisions.csv")
    with data.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_municipality_is_one_city_whichever_of_its_seats_is_nearest() -> None:
    """Chongqing files its counties under a pseudo-city of their own (500200, 县) beside its districts
    (500100): a scan in Liangping county and one in Yuzhong district are both in Chongqing, the city an
    IP database's 重庆市 names too, and reports show it by that name."""
    liangping, yuzhong = (30.6542, 107.7696), (29.5527, 106.5689)
    chongqing = divisions.city_named("CN-CQ", "重庆市")
    assert chongqing == "CN-500100"
    assert divisions.city_at(*liangping) == divisions.city_at(*yuzhong) == chongqing
    assert divisions.city_name(chongqing) == divisions.city_name("CN-500200") == "重庆市"


def test_every_seat_falls_in_its_own_province_and_a_named_city() -> None:
    """At each county-level seat of the table, the city found is in the seat's province and has a real
    name (never 市辖区 or 县); in the four municipalities it is the municipality's one city. (Counties
    governed by their province directly, such as Jiyuan 419001, belong to no city: none is found.)"""
    rows = _rows()
    codes = {row["code"] for row in rows}
    for row in rows:
        code, lat, lng = row["code"], float(row["lat"]), float(row["lng"])
        if code.endswith("00"):
            continue
        city = divisions.city_at(lat, lng)
        if code[:2] not in ("11", "12", "31", "50") and f"{code[:4]}00" not in codes:
            assert city is None, (code, city)
            continue
        assert city is not None, code
        assert divisions.province_of(city) == divisions.province_of(f"CN-{code[:2]}0100"), (code, city)
        assert divisions.city_name(city) not in (None, "市辖区", "县"), (code, city)
        if code[:2] in ("11", "12", "31", "50"):
            assert city == f"CN-{code[:2]}0100", (code, city)


def test_a_territory_names_chongqing_by_its_one_city_code() -> None:
    """CN-500200 (Chongqing's counties) is no city a territory may name any more (migration 0031 moved
    the territories that did to CN-500100): a scan in a county is within a territory of Chongqing."""
    assert divisions.is_city("CN-500100")
    assert not divisions.is_city("CN-500200")
    assert regions.within("CN-CQ", ["CN-500100"], regions.city_at(30.6542, 107.7696))
