"""The consumer page: `GET` of a printed code URL renders a small HTML page and never records a scan.

Chat apps and link checkers fetch URLs before anyone taps them, so the GET only verifies the code in
process and shows what the code proves (product, batch). The page's own script then posts the scan
(`POST /v1/scans`), shows the verdict and offers phone enrolment. Templates, CSS and JS are files in
`service/pages/`; every dynamic value is HTML-escaped here (product facts are brand-supplied).
"""

from __future__ import annotations

import functools
import html
import re
import secrets
import string
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import msgspec
from litestar import Request, Response, get
from litestar.enums import MediaType

from antifraud.errors import StorageUnavailable
from codegen.errors import InvalidSscc
from codegen.gtin import validate_sscc
from codegen.registry import MISS_OUTCOMES, CodeFacts, Outcome, Verification
from service.pages.texts import DEFAULT_LANG, TEXTS, Lang
from service.state import AppState

PAGES = "service.pages"
# Brand-supplied facts may be long: cap what the page shows so it stays small on a phone.
MAX_FACTS: Final = 30
MAX_FACT_CHARS: Final = 300
# What a printed code's path looks like (GS1 Digital Link or short brand form, any case, optional
# trailing slash); anything else under these prefixes is no code at all (404). Letters and digits
# outside the serial alphabet still count as code-shaped: a misprinted code deserves "could not verify".
_CODE_SHAPED = re.compile(r"/(?:01/[0-9]{14}/21|[Cc]/[A-Za-z0-9]{4,8})/[A-Za-z0-9]{20}/?")


# One catch-all route per prefix: litestar prefers a `path` parameter over a more specific sibling
# route, so the handler checks the shape itself. `/c/` because phones sometimes lowercase a whole URL.
@get(["/01/{rest:path}", "/C/{rest:path}", "/c/{rest:path}"], include_in_schema=False)
async def consumer_page(request: Request[Any, Any, Any], rest: str) -> Response[str]:
    """The page behind a printed code: GS1 Digital Link (/01/<GTIN>/21/<serial>) or /C/<brand>/<serial>."""
    del rest  # the whole path is checked below, prefix included
    return await _page(request, code_shaped=_CODE_SHAPED.fullmatch(request.url.path) is not None)


@get("/00/{rest:path}", include_in_schema=False)
async def logistics_label_page(request: Request[Any, Any, Any], rest: str) -> Response[str]:
    """The URL on a case's or pallet's label (`https://<scan-domain>/00/<SSCC>`, see codegen.aggregation):
    a phone that scans it learns it holds no product code, instead of meeting an error. Nothing is looked
    up nor recorded: what a case holds is for the brand's and distributors' APIs."""
    lang = pick_language(request.headers.get("accept-language"))
    nonce = secrets.token_urlsafe(18)
    sscc = rest.strip("/")
    try:
        validate_sscc(sscc)
    except InvalidSscc:
        return _unverified(lang, nonce, mode="not_found", status=404)
    text = TEXTS[lang]
    page = _render(
        "unverified.html",
        escaped={
            **_common(lang, nonce),
            "mode": "logistics",
            "card_class": "",
            "badge": "",
            "heading": text["logistics_title"],
            "lead": text["logistics_lead"].format(sscc=sscc),
            "advice": "",
        },
        trusted={"style": _asset("consumer.css"), "script_html": ""},
    )
    return _respond(page, lang, nonce, status=200)


def pick_language(accept_language: str | None) -> Lang:
    """English when the browser ranks English above Chinese; zh-CN otherwise (the first market)."""
    best: Lang = DEFAULT_LANG
    best_q = 0.0
    for entry in (accept_language or "").split(",")[:32]:
        tag, _, parameters = entry.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in {"zh", "en"}:
            continue
        q = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # Strictly greater: on a tie the earlier entry, the browser's own first choice, wins.
        if q > best_q:
            best, best_q = ("en" if primary == "en" else "zh-CN"), q
    return best


async def _page(request: Request[Any, Any, Any], *, code_shaped: bool) -> Response[str]:
    state: AppState = request.app.state.onecode
    lang = pick_language(request.headers.get("accept-language"))
    nonce = secrets.token_urlsafe(18)
    if not code_shaped:
        return _unverified(lang, nonce, mode="not_found", status=404)
    query = request.url.query
    scanned = request.url.path + (f"?{query}" if query else "")
    try:
        verification = await _verify(state, scanned)
    except StorageUnavailable:
        return _unverified(lang, nonce, mode="unavailable", status=503, extra={"Retry-After": "5"})
    if verification.outcome is Outcome.GENUINE and verification.facts is not None:
        return _genuine(lang, nonce, verification.facts)
    # Voided, forged, unknown: no facts shown, even where the registry knows them (a voided batch).
    return _unverified(lang, nonce, mode="unverified", status=200)


async def _verify(state: AppState, code: str) -> Verification:
    """The check POST /v1/scans makes (a miss a stale cache could explain gets one coalesced reload),
    with nothing else: no Redis counter, no scan log, no member. A GET must have no effect."""
    await state.registry_follower.ensure_loaded()
    verification = state.registry.verify(code)
    if verification.outcome in MISS_OUTCOMES and await state.registry_follower.refresh_if_stale():
        verification = state.registry.verify(code)
    return verification


def _genuine(lang: Lang, nonce: str, facts: CodeFacts) -> Response[str]:
    text = TEXTS[lang]
    page = _render(
        "consumer.html",
        escaped={**_common(lang, nonce), "product_name": facts.product_name},
        trusted={
            "style": _asset("consumer.css"),
            "script": _asset("consumer.js"),
            "facts_html": _facts_html(facts, text),
        },
    )
    return _respond(page, lang, nonce, status=200)


def _unverified(
    lang: Lang, nonce: str, *, mode: str, status: int, extra: Mapping[str, str] | None = None
) -> Response[str]:
    text = TEXTS[lang]
    if mode == "unavailable":
        heading, lead, advice = text["unavailable_title"], text["unavailable_lead"], ""
    elif mode == "not_found":
        heading, lead, advice = text["unverified_title"], text["not_found_lead"], text["unverified_advice"]
    else:
        heading, lead, advice = text["unverified_title"], text["unverified_lead"], text["unverified_advice"]
    # Only a code-shaped page runs the script: it reports the forged scan (see consumer.js).
    script = f'<script nonce="{nonce}">{_asset("consumer.js")}</script>' if mode == "unverified" else ""
    page = _render(
        "unverified.html",
        escaped={
            **_common(lang, nonce),
            "mode": mode,
            "card_class": "bad",
            "badge": "\u2717",
            "heading": heading,
            "lead": lead,
            "advice": advice,
        },
        trusted={"style": _asset("consumer.css"), "script_html": script},
    )
    return _respond(page, lang, nonce, status=status, extra=extra)


def _common(lang: Lang, nonce: str) -> dict[str, str]:
    text = TEXTS[lang]
    values = {f"t_{key}": value for key, value in text.items()}
    # The script reads its texts from a data attribute: escaped like any attribute, parsed as JSON.
    values["texts_json"] = msgspec.json.encode(text).decode()
    values["lang"] = lang
    values["nonce"] = nonce
    return values


def _facts_html(facts: CodeFacts, text: Mapping[str, str]) -> str:
    rows: list[tuple[str, str]] = []
    if facts.gtin:
        rows.append((text["gtin"], facts.gtin))
    if facts.lot:
        rows.append((text["lot"], facts.lot))
    if facts.production_date:
        rows.append((text["production_date"], facts.production_date.isoformat()))
    rows.extend((str(key), _fact_text(value, text)) for key, value in list(facts.facts.items())[:MAX_FACTS])
    return "".join(
        f"<dt>{html.escape(name[:MAX_FACT_CHARS])}</dt><dd>{html.escape(value)}</dd>" for name, value in rows
    )


def _fact_text(value: Any, text: Mapping[str, str]) -> str:
    if value is True or value is False:
        return text["yes"] if value else text["no"]
    if value is None:
        return "-"
    shown = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return shown if len(shown) <= MAX_FACT_CHARS else shown[: MAX_FACT_CHARS - 1] + "\u2026"


def _render(name: str, *, escaped: Mapping[str, str], trusted: Mapping[str, str]) -> str:
    """Fill a template: `escaped` values are HTML-escaped, `trusted` ones are our own files or markup."""
    values = {key: html.escape(value, quote=True) for key, value in escaped.items()}
    values.update(trusted)
    # substitute() (not safe_substitute) so a placeholder without a value fails loudly in tests.
    return _template(name).substitute(values)


@functools.cache
def _template(name: str) -> string.Template:
    return string.Template(_asset(name))


@functools.cache
def _asset(name: str) -> str:
    # Read on first use, not at import: importing a module has no side effects.
    return resources.files(PAGES).joinpath(name).read_text(encoding="utf-8")


def _respond(
    page: str, lang: Lang, nonce: str, *, status: int, extra: Mapping[str, str] | None = None
) -> Response[str]:
    headers = {
        # No external anything: scripts and styles only with this response's nonce, fetches to us only,
        # and forms cannot submit natively (the script posts them as JSON).
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
        ),
        # Each view gets a fresh nonce, and a shared cache must never hand one consumer's page to another.
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
        "Content-Language": lang,
        "Vary": "Accept-Language",
        **(extra or {}),
    }
    return Response(page, status_code=status, media_type=MediaType.HTML, headers=headers)
