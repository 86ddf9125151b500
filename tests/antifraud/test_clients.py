"""What the scan log keeps of a client: truncated addresses, coarse locations, browser families."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from antifraud.clients import coarse, ip_prefix, ua_family


def _reference_prefix(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@given(st.ip_addresses())
def test_prefix_truncates_ipv4_to_24_and_ipv6_to_48_bits(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
):
    assert ip_prefix(str(address)) == _reference_prefix(str(address))


@given(st.text(alphabet="0123456789.:abcdef", max_size=20))
def test_prefix_of_any_string_matches_the_ipaddress_module(text: str):
    assert ip_prefix(text) == _reference_prefix(text)


def test_prefix_rejects_non_addresses():
    assert ip_prefix(None) is None
    assert ip_prefix("") is None
    assert ip_prefix("01.2.3.4") is None  # leading zeros are ambiguous (octal in some parsers)
    assert ip_prefix("testclient") is None


def test_browser_family_names_in_app_browsers_first():
    wechat = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47 Safari/604.1"
    assert ua_family(wechat) == "wechat"
    assert ua_family("Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36") == "chrome"
    assert ua_family("curl/8.5.0") == "script"
    assert ua_family("something else") == "other"
    assert ua_family(None) is None


def test_location_is_rounded_to_about_a_kilometre():
    assert coarse(31.230416) == 31.23
    assert coarse(None) is None
