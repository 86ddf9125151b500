"""China's administrative divisions (GB/T 2260 codes) for city-level territories.

A distributor's territory may name a prefecture-level city as `CN-` and its six-digit code (`CN-330100`,
Hangzhou) beside ISO 3166-2 provinces (`CN-ZJ`) and countries. A located scan in China is placed in a city
by the nearest division seat (county or city district) in `data/cn_divisions.csv`: every division's code,
name and seat, from the cpca project (MIT licence, see `data/README.md`). Near a city's border the
nearest seat may lie across it; that is the precision of a seat-based lookup, and why a scan whose city
disagrees with its province is given no city.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from importlib import resources

from scipy.spatial import cKDTree

# The first two digits of a division code name its province. Taiwan, Hong Kong and Macao go by their
# country codes, as the geocoder places located scans there (a scan's region is one code either way).
PROVINCES = {
    "11": "CN-BJ", "12": "CN-TJ", "13": "CN-HE", "14": "CN-SX", "15": "CN-NM", "21": "CN-LN",
    "22": "CN-JL", "23": "CN-HL", "31": "CN-SH", "32": "CN-JS", "33": "CN-ZJ", "34": "CN-AH",
    "35": "CN-FJ", "36": "CN-JX", "37": "CN-SD", "41": "CN-HA", "42": "CN-HB", "43": "CN-HN",
    "44": "CN-GD", "45": "CN-GX", "46": "CN-HI", "50": "CN-CQ", "51": "CN-SC", "52": "CN-GZ",
    "53": "CN-YN", "54": "CN-XZ", "61": "CN-SN", "62": "CN-GS", "63": "CN-QH", "64": "CN-NX",
    "65": "CN-XJ", "71": "TW", "81": "HK", "82": "MO",
}  # fmt: skip
CITY_CODE = re.compile(r"^CN-(\d{4})00$")
# Farther than this from every seat (in degrees, about 100 km) a point is not in a Chinese city.
MAX_SEAT_DISTANCE = 1.0
# Longitudes are scaled by the cosine of a middle latitude so that the tree measures rough distances.
_LNG_SCALE = math.cos(math.radians(33))


@dataclass(frozen=True)
class _Seats:
    names: dict[str, str]
    codes: list[str]
    tree: cKDTree


@functools.cache
def _seats() -> _Seats:
    data = resources.files("antifraud").joinpath("data/cn_divisions.csv")
    with data.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = {row["code"]: row["name"] for row in rows}
    # County-level seats place a point; provinces and cities are only the levels it belongs to.
    seats = [row for row in rows if not row["code"].endswith("00")]
    points = [(float(row["lat"]), float(row["lng"]) * _LNG_SCALE) for row in seats]
    return _Seats(names, [row["code"] for row in seats], cKDTree(points))


def is_city(code: str) -> bool:
    """`CN-` and a prefecture-level city's code (`CN-330100`) that the division table knows."""
    found = CITY_CODE.match(code)
    return (
        found is not None
        and found[1][:2] in PROVINCES
        and found[1][2:] != "00"  # `CN-330000` is the province, named `CN-ZJ`
        and code[3:] in _seats().names
        # A municipality is one city: Chongqing's second code (500200, its counties) is not one.
        and (found[1][:2] not in _MUNICIPALITIES or found[1][2:] == "01")
    )


def province_of(city: str) -> str:
    """The ISO 3166-2 province of a city code (`CN-330100` is in `CN-ZJ`)."""
    return PROVINCES[city[3:5]]


def city_name(city: str) -> str | None:
    """The city's Chinese name; a municipality's districts (and Chongqing's counties) go by the
    municipality's (北京市)."""
    names = _seats().names
    name = names.get(city[3:])
    return names.get(city[3:5] + "0000") if name in ("市辖区", "县") else name


def city_at(lat: float, lng: float) -> str | None:
    """The prefecture-level city (`CN-330100`) whose division seat is nearest, or None far from China.

    Municipalities' districts belong to their municipality's code (`CN-110100`, Beijing's districts).
    """
    seats = _seats()
    distance, at = seats.tree.query((lat, lng * _LNG_SCALE))
    if distance > MAX_SEAT_DISTANCE:
        return None
    seat = seats.codes[at]
    if seat[:2] in _MUNICIPALITIES:
        # Chongqing's counties sit under a second pseudo-city (500200, 县) beside its districts (500100):
        # a municipality is one city, whichever of its seats is nearest.
        return f"CN-{seat[:2]}0100"
    city = f"CN-{seat[:4]}00"
    return city if city[3:] in seats.names else None


# Suffixes that Chinese names of provinces and cities drop in short forms (广东省 is 广东, 北京市 北京):
# IP databases write either.
_NAME_SUFFIXES = re.compile(r"(特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|省|市|地区)$")
# Municipalities: their districts all belong to the municipality's one city code (`CN-110100`).
_MUNICIPALITIES = ("11", "12", "31", "50")


def _short_name(name: str) -> str:
    return _NAME_SUFFIXES.sub("", name.strip())


@functools.cache
def _codes_by_name() -> dict[tuple[str, str], str]:
    """Province (`""`, short name) and city (province code, short name) codes by their Chinese names."""
    codes: dict[tuple[str, str], str] = {}
    for code, name in _seats().names.items():
        if code.endswith("0000"):
            codes["", _short_name(name)] = code[:2]
        elif code.endswith("00") and name not in ("市辖区", "县"):
            codes[code[:2], _short_name(name)] = code
    return codes


def province_named(name: str) -> str | None:
    """The ISO 3166-2 code of a province by its Chinese name, long or short (广东省, 广东: `CN-GD`)."""
    prefix = _codes_by_name().get(("", _short_name(name)))
    return PROVINCES.get(prefix) if prefix is not None else None


def city_named(province: str, name: str) -> str | None:
    """The code of a province's prefecture-level city by its Chinese name (深圳市 in `CN-GD`: `CN-440300`);
    a municipality's own name, or any of its districts', is its one city code."""
    prefix = next((digits for digits, iso in PROVINCES.items() if iso == province), None)
    if prefix is None:
        return None
    if prefix in _MUNICIPALITIES:
        return f"CN-{prefix}0100"
    code = _codes_by_name().get((prefix, _short_name(name)))
    return f"CN-{code}" if code is not None else None
