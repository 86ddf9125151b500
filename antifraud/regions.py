"""Regions: ISO 3166-2 codes for distributors' territories and for where a scan happened.

A territory is a list of codes, each a country (`CN`) or a first-level subdivision (`CN-ZJ`, Zhejiang).
A scan's region comes from the consented browser location through an offline reverse geocoder that ships
its own data (`reverse_geocode`: the nearest known city, with its country and province), mapped to the
province's ISO 3166-2 code (`pycountry`). Never an online lookup.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import pycountry
import reverse_geocode

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


def within(region: str, territory: tuple[str, ...] | list[str]) -> bool:
    """Whether a scan's region lies in a territory: the subdivision itself, or its whole country."""
    return region in territory or region.split("-", 1)[0] in territory


def region_at(lat: float, lng: float) -> str | None:
    """The ISO 3166-2 province (or the country, when its provinces are unknown) at a point, or None."""
    place = reverse_geocode.get((lat, lng))
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
