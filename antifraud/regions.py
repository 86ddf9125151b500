"""Regions: ISO 3166-2 codes for distributors' territories and for where a scan happened.

A territory is a list of codes, each a country (`CN`), a first-level subdivision (`CN-ZJ`, Zhejiang) or,
in China, a prefecture-level city (`CN-330100`, Hangzhou: see `antifraud.divisions`).
A scan's region comes from the consented browser location through an offline reverse geocoder that ships
its own data (`reverse_geocode`: the nearest known city, with its country and province), mapped to the
province's ISO 3166-2 code (`pycountry`); without a location, from the client's IP address through an
offline IP database the operator provides (MaxMind format, `IpRegions`). Never an online lookup.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from typing import TYPE_CHECKING, Any

import maxminddb
import pycountry
import reverse_geocode

from antifraud import divisions

if TYPE_CHECKING:
    from pathlib import Path

# What distinguishes two subdivisions' names never sits in these words ("Zhejiang Sheng" is "Zhejiang").
_GENERIC_WORDS = re.compile(
    r"\b(sheng|shi|zizhiqu|huizu|zhuangzu|uygur|sar|province|prefecture|state|region|autonomous)\b"
)


# The geocoder names some provinces by their English exonym, ISO by the Pinyin name.
_ALIASES = {("CN", "tibet"): "CN-XZ", ("CN", "inner mongolia"): "CN-NM"}


def is_region(code: str) -> bool:
    """A country (ISO 3166-1 alpha-2) or a subdivision (ISO 3166-2) that exists."""
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


class IpRegions:
    """Region by IP address from a MaxMind-format database (GeoLite2-City, GeoIP2-City, or a file of the
    same shape); memory-mapped, a lookup costs microseconds. The address itself is never stored."""

    def __init__(self, path: Path) -> None:
        # Opened at start-up: a missing or corrupt file fails the start, not every scan.
        self._reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)

    def region_of(self, ip: str) -> str | None:
        return self.place_of(ip)[0]

    def place_of(self, ip: str) -> tuple[str | None, str | None]:
        """The address's region and, in China, its city (by the record's coordinates), else None."""
        try:
            record: Any = self._reader.get(ipaddress.ip_address(ip))
        except ValueError:
            return None, None
        if not isinstance(record, dict):
            return None, None
        country = (record.get("country") or {}).get("iso_code")
        if not isinstance(country, str):
            return None, None
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
