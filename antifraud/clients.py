"""What the scan log keeps of a client: a truncated IP prefix, a coarse location and a browser family."""

from __future__ import annotations

import ipaddress

# Ordered: in-app browsers first, since their user agents also name the platform browser.
_FAMILIES = (
    ("MicroMessenger", "wechat"),
    ("AlipayClient", "alipay"),
    ("DingTalk", "dingtalk"),
    ("Weibo", "weibo"),
    ("QQ/", "qq"),
    ("HeadlessChrome", "headless"),
    ("python-requests", "script"),
    ("curl/", "script"),
    ("locust", "script"),
    ("Edg/", "edge"),
    ("CriOS", "chrome-ios"),
    ("Chrome/", "chrome"),
    ("Firefox/", "firefox"),
    ("Safari/", "safari"),
)


def ua_family(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    for needle, family in _FAMILIES:
        if needle in user_agent:
            return family
    return "other"


def client_ip(peer: str | None, forwarded_for: str | None, *, trust_forwarded_for: bool) -> str | None:
    """The caller's address: the first X-Forwarded-For entry behind a trusted proxy, else the peer's."""
    if trust_forwarded_for and forwarded_for:
        return forwarded_for.split(",")[0].strip()
    return peer


def ip_prefix(ip: str | None) -> str | None:
    """IPv4 to /24 and IPv6 to /48: enough for regional statistics and abuse limits, not a person."""
    if not ip:
        return None
    octets = ip.split(".")
    # The common case, dotted IPv4, without the ipaddress module (a measurable cost on the scan path).
    if len(octets) == 4 and all(o.isdigit() and str(int(o)) == o and int(o) <= 255 for o in octets):  # noqa: PLR2004
        return f"{octets[0]}.{octets[1]}.{octets[2]}.0/24"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    bits = 24 if address.version == 4 else 48  # noqa: PLR2004
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def coarse(value: float | None) -> float | None:
    """Two decimals: about 1 km, enough to tell a city and a province apart."""
    return None if value is None else round(value, 2)
