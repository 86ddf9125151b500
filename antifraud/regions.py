"""Regions: ISO 3166-2 codes for distributors' territories and for where a scan happened.

A territory is a list of codes, each a country (`CN`), a first-level subdivision (`CN-ZJ`, Zhejiang) or,
in China, a prefecture-level city (`CN-330100`, Hangzhou: see `antifraud.divisions`).
A scan's region comes from the consented browser location through an offline reverse geocoder that ships
its own data (`reverse_geocode`: the nearest known city, with its country and province), mapped to the
province's ISO 3166-2 code (`pycountry`); without a location, from the client's IP address through an
offline IP database the operator provides (MaxMind or ip2region format, `IpRegions`). Never an online lookup.
"""

from __future__ import annotations

import functools
import gettext
import ipaddress
import mmap
import re
import unicodedata
from typing import TYPE_CHECKING, Any, cast

import ip2region.searcher as ip2region_searcher
import ip2region.util as ip2region_util
import maxminddb
import pycountry
import reverse_geocode

from antifraud import divisions

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

# What distinguishes two subdivisions' names never sits in these words ("Zhejiang Sheng" is "Zhejiang").
_GENERIC_WORDS = re.compile(
    r"\b(sheng|shi|zizhiqu|huizu|zhuangzu|uygur|sar|province|prefecture|state|region|autonomous)\b"
)


# The geocoder names some provinces by their English exonym, ISO by the Pinyin name.
_ALIASES = {("CN", "tibet"): "CN-XZ", ("CN", "inner mongolia"): "CN-NM"}


# ISO 3166-2 lists them under CN too, but the geocoder places their scans by country code (HK, MO, TW):
# a territory or rule naming CN-HK would never match a scan there.
_RECORDED_AS_COUNTRIES = frozenset({"CN-HK", "CN-MO", "CN-TW"})


def is_region(code: str) -> bool:
    """A country (ISO 3166-1 alpha-2) or a subdivision (ISO 3166-2) that exists, written as scans record
    it: upper case (pycountry's lookups ignore case; the comparisons with scans do not)."""
    if code != code.upper() or code in _RECORDED_AS_COUNTRIES:
        return False
    if "-" in code:
        return pycountry.subdivisions.get(code=code) is not None
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None  # noqa: PLR2004


def is_territory(code: str) -> bool:
    """What a distributor's territory may name: a region, or a Chinese city (`CN-330100`)."""
    return is_region(code) or divisions.is_city(code)


def within(region: str, territory: tuple[str, ...] | list[str], city: str | None = None) -> bool:
    """Whether a scan lies in a territory: its city, its province or its whole country is named.

    A scan whose city is unknown (no location, or one near a border) is not held against a territory of
    cities in its province: diversion needs evidence.
    """
    if region in territory or region.split("-", 1)[0] in territory:
        return True
    if city is not None:
        return city in territory
    return any(divisions.is_city(code) and divisions.province_of(code) == region for code in territory)


def region_at(lat: float, lng: float) -> str | None:
    """The ISO 3166-2 province (or the country, when its provinces are unknown) at a point, or None.

    Looked up per cell of 0.01 degree (about 1 km, the precision the scan log keeps anyway) and cached:
    scans cluster in cities, and a lookup in the geocoder's tree costs tens of microseconds.
    """
    return _region_of_cell(round(lat * 100), round(lng * 100))


def city_at(lat: float, lng: float) -> str | None:
    """The Chinese city at a point (`CN-330100`) when its province agrees with `region_at`; else None."""
    lat_cell, lng_cell = round(lat * 100), round(lng * 100)
    return _consistent_city(_region_of_cell(lat_cell, lng_cell), lat_cell / 100, lng_cell / 100)


def warm_up() -> None:
    """Load the geocoder's and the division table's data (about half a second) before a scan needs it."""
    city_at(30.27, 120.16)


# Cached: located scans come from cells of 0.01 degree and IP records from a few thousand city
# centroids, while a lookup in the seat tree costs tens of microseconds on the scan path.
@functools.lru_cache(maxsize=200_000)
def _consistent_city(region: str | None, lat: float, lng: float) -> str | None:
    """The nearest seat's city, when it lies in the province found another way (near a border the two
    may disagree: then the city is unknown rather than wrong)."""
    if region is None or not region.startswith("CN-"):
        return None
    city = divisions.city_at(lat, lng)
    return city if city is not None and divisions.province_of(city) == region else None


@functools.lru_cache(maxsize=200_000)
def _region_of_cell(lat_cell: int, lng_cell: int) -> str | None:
    place = reverse_geocode.get((lat_cell / 100, lng_cell / 100))
    country = place.get("country_code")
    if not country:
        return None
    state = place.get("state")
    if not state:
        return str(country)
    key = _key(state)
    return _ALIASES.get((country, key)) or _subdivisions(country).get(key) or str(country)


def _key(name: str) -> str:
    """A name to compare: no accents (Tôkyô is Tokyo), no case, no generic words."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(_GENERIC_WORDS.sub(" ", plain.lower().replace("-", " ")).split())


@functools.cache
def _subdivisions(country: str) -> dict[str, str]:
    """A country's first-level subdivisions by their name without generic words."""
    found = pycountry.subdivisions.get(country_code=country) or []
    return {_key(s.name): s.code for s in found if s.parent_code is None}


Place = tuple[str | None, str | None]
"""A scan's region (ISO 3166-2 province, or the country) and, in China, its city (`CN-330100`)."""
UNKNOWN: Place = (None, None)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class IpRegions:
    """Region by IP address from the offline databases the operator provides: MaxMind format (`.mmdb`,
    e.g. GeoLite2-City) or ip2region's xdb format (`.xdb`, one file for IPv4 and one for IPv6); the first
    file that knows an address answers. The address itself is never stored."""

    def __init__(self, paths: Sequence[Path]) -> None:
        # Opened at start-up: a missing or corrupt file fails the start, not every scan.
        self._databases = [
            _Ip2Region(path) if path.suffix.lower() == ".xdb" else _MaxMind(path) for path in paths
        ]

    def region_of(self, ip: str) -> str | None:
        return self.place_of(ip)[0]

    def place_of(self, ip: str) -> Place:
        """The address's region and, in China, its city, else None."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return UNKNOWN
        for database in self._databases:
            place = database.place_of(address)
            if place != UNKNOWN:
                return place
        return UNKNOWN

    def close(self) -> None:
        for database in self._databases:
            database.close()


class _MaxMind:
    """A MaxMind-format database; memory-mapped, a lookup costs microseconds. The record's country and
    subdivision give the region, its coordinates the city."""

    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)

    def place_of(self, address: Address) -> Place:
        try:
            record: Any = self._reader.get(address)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return UNKNOWN
        if not isinstance(record, dict):
            return UNKNOWN
        country = (record.get("country") or {}).get("iso_code")
        if not isinstance(country, str):
            return UNKNOWN
        subdivisions = record.get("subdivisions") or [{}]
        sub = subdivisions[0].get("iso_code") if isinstance(subdivisions[0], dict) else None
        code = f"{country}-{sub}" if isinstance(sub, str) else None
        region = code if code is not None and is_region(code) else country
        location = record.get("location") or {}
        lat, lng = location.get("latitude"), location.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lng, int | float):
            return region, None
        return region, _consistent_city(region, float(lat), float(lng))

    def close(self) -> None:
        self._reader.close()


class _Ip2Region:
    """An ip2region xdb file (IPv4 or IPv6, as its header says), memory-mapped and searched by the
    official binding; a record is text, `国家|省份|城市|ISP|CC` in current data, `国家|区域|省份|城市|ISP`
    in data made before 2025 (see `ip2region_place`)."""

    def __init__(self, path: Path) -> None:
        ip2region_util.verify_from_file(str(path))
        version = ip2region_util.version_from_header(ip2region_util.load_header_from_file(str(path)))
        if version is None:
            raise ValueError(f"{path}: not an IPv4 or IPv6 ip2region database")
        self._version = version
        with path.open("rb") as handle:
            self._content = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        # The searcher only slices and indexes its buffer, which a memory map does (pages shared by the
        # workers, as with MaxMind's reader) instead of a private copy of the whole file per process.
        self._searcher = ip2region_searcher.new_with_buffer(version, cast("bytes", self._content))

    def place_of(self, address: Address) -> Place:
        if address.version != self._version.id:
            return UNKNOWN
        try:
            record = self._searcher.search(address.packed)
        except (IndexError, ValueError):  # a damaged file (ValueError: UnicodeDecodeError too)
            return UNKNOWN  # a scan is never refused for where it happened
        return ip2region_place(record)

    def close(self) -> None:
        self._content.close()


@functools.lru_cache(maxsize=20_000)
def ip2region_place(record: str) -> Place:
    """The place an ip2region record names; `0` is ip2region's "unknown" in every field.

    Current data ends with the country's ISO code and names places in the country's language
    (`中国|广东省|深圳市|电信|CN`, `Australia|Queensland|Brisbane|0|AU`). Older data names every country in
    Chinese with a region field that is usually 0 (`中国|0|广东省|深圳市|电信`): China is placed by province
    and city, another country only by its Chinese name when it is ISO's (`美国`, `日本`).
    """
    fields = [field.strip() for field in record.split("|")]
    if len(fields) == 5 and _is_country(fields[4]):  # noqa: PLR2004
        country, province, city = fields[4], fields[1], fields[2]
    elif len(fields) == 5:  # noqa: PLR2004
        country, province, city = _countries_in_chinese().get(fields[0], ""), fields[2], fields[3]
    else:
        return UNKNOWN
    if not country:
        return UNKNOWN
    if country != "CN":
        region = _subdivisions(country).get(_key(province)) if province != "0" else None
        return region or country, None
    region = divisions.province_named(province) if province != "0" else None
    if region is None:
        return country, None
    return region, divisions.city_named(region, city) if city != "0" else None


def _is_country(code: str) -> bool:
    return len(code) == 2 and code.isascii() and code.isupper() and is_region(code)  # noqa: PLR2004


@functools.cache
def _countries_in_chinese() -> dict[str, str]:
    """ISO 3166-1 codes by the countries' Simplified Chinese names (ISO's, from pycountry's translations)."""
    translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"])
    return {translation.gettext(country.name): country.alpha_2 for country in pycountry.countries}
