"""What every console page shares: templates, the words, the navigation by role, the response headers.

Pages are server-rendered (Jinja2, autoescaped, templates in `service/pages/`). Writes go through the JSON
API with the session cookie; the page carries the session's CSRF token in a `<meta>` tag for them.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import jinja2
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.params import Parameter
from litestar.response import Redirect
from psycopg import AsyncConnection

from service import users
from service.errors import InvalidField
from service.guards import ANY_BRAND_ROLE, CSRF_STATE
from service.models import Principal, Role
from service.pages.console_texts import TEXTS
from service.problems import Problem, exception_handlers, problem_for
from service.routes import antifraud, campaigns, codes, member_admin, shipments
from service.routes.consumer import pick_language

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("service", "pages"), autoescape=True, undefined=jinja2.StrictUndefined
)
# Brand pages: every brand role but the distributor's portal and the till's.
BRAND_PAGE_ROLES: Final = tuple(ANY_BRAND_ROLE - {Role.DISTRIBUTOR, Role.POINT_OF_SALE})
BAR_WIDTH: Final = 380
# Pages filter by whole days in China's time, as people at a Chinese brand read their calendars, and show
# times in it (the `local` filter): a table in UTC put a morning's scans on the day before.
CHINA: Final = zoneinfo.ZoneInfo("Asia/Shanghai")


def local_time(moment: dt.datetime, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(CHINA).strftime(pattern)


TEMPLATES.filters["local"] = local_time
# Days a filter may name (beyond them, date arithmetic overflows before anything is asked).
FIRST_DAY: Final = dt.date(2000, 1, 1)
LAST_DAY: Final = dt.date(9000, 12, 31)
# A filter form's fields as the query carries them: strings, empty when the field is (see `form_day`).
FormDay = Annotated[str, Parameter(max_length=10)]
FormId = Annotated[str, Parameter(max_length=36)]
# The header's links: (path, text key, roles that may open the page). A link shows only to those roles.
NAVIGATION: Final[tuple[tuple[str, str, frozenset[Role]], ...]] = (
    ("/console/dashboard", "dashboard", frozenset(BRAND_PAGE_ROLES)),
    ("/console/campaigns", "campaigns_nav", frozenset(campaigns.VIEWERS)),
    ("/console/products", "products_nav", frozenset(codes.READERS)),
    ("/console/shipments", "shipments_nav", frozenset(shipments.READERS)),
    ("/console/members", "members_nav", frozenset(member_admin.READERS)),
    ("/console/segments", "segments", frozenset(member_admin.READERS)),
    ("/console/kpis", "kpis_nav", frozenset(member_admin.READERS)),
    ("/console/approvals", "approvals_nav", frozenset({Role.FINANCE, Role.BRAND_ADMIN, Role.AUDITOR})),
    ("/console/antifraud", "antifraud_nav", frozenset(antifraud.READERS)),
    ("/console/audit", "audit_nav", frozenset({Role.BRAND_ADMIN, Role.AUDITOR})),
    ("/console/settings", "settings_nav", frozenset({Role.BRAND_ADMIN, Role.AUDITOR})),
    ("/console/portal", "portal", frozenset({Role.DISTRIBUTOR})),
    ("/console/account", "account", ANY_BRAND_ROLE),
)


def language(request: Request[Any, Any, Any]) -> str:
    return pick_language(request.headers.get("accept-language"))


def texts(request: Request[Any, Any, Any]) -> dict[str, str]:
    return TEXTS[language(request)]


def render(
    request: Request[Any, Any, Any], name: str, *, status_code: int = 200, **context: Any
) -> Response[str]:
    lang = language(request)
    principal: Principal | None = request.state.get("principal")
    links = [
        (path, TEXTS[lang][key], path == request.url.path)
        for path, key, allowed in NAVIGATION
        if principal is not None and principal.role in allowed
    ]
    page = TEMPLATES.get_template(name).render(
        lang=lang,
        t=TEXTS[lang],
        nav=links,
        role=principal.role.value if principal is not None else None,
        csrf_token=request.state.get(CSRF_STATE, ""),
        **context,
    )
    return Response(
        page,
        status_code=status_code,
        media_type=MediaType.HTML,
        headers={
            "Vary": "Accept-Language",
            "Cache-Control": "no-store",
            # Inline styles and scripts are the templates' own; nothing is loaded from elsewhere.
            "Content-Security-Policy": (
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
                " img-src 'self' data:; frame-ancestors 'none'"
            ),
            "X-Frame-Options": "DENY",
        },
    )


ExceptionHandler = Callable[[Request[Any, Any, Any], Any], Response[Any]]


def page_exception_handlers() -> dict[int | type[Exception], ExceptionHandler]:
    """For the console's pages: every error litestar would answer with a problem, answered as a page."""
    return dict.fromkeys(exception_handlers(), _page_error)


def not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """An address no route matches: under /console a page with a way back (the console router's own
    handlers never see it: litestar answers before choosing a router), elsewhere the problem."""
    if request.url.path == "/console" or request.url.path.startswith("/console/"):
        return _page_error(request, exc)
    return problem_for(request, exc)


def _page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A browser opening a page gets a page: the sign-in (and back) when the session is missing or over,
    else the error in words with a way back. Scripts asking for JSON still get the problem."""
    problem = problem_for(request, exc)
    if "text/html" not in request.headers.get("accept", ""):
        return problem
    status = problem.status_code or 500
    if status == 401:  # noqa: PLR2004
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/console/sign-in?{urlencode({'next': back})}")
    key = {403: "error_forbidden", 404: "error_not_found", 410: "error_gone", 429: "error_busy"}.get(
        status,
        "error_unavailable" if status >= 500 else "error_invalid",  # noqa: PLR2004
    )
    detail = problem.content.detail if isinstance(problem.content, Problem) else None
    page = render(request, "console_error.html", status_code=status, title=texts(request)[key], detail=detail)
    page.headers.update({k: v for k, v in problem.headers.items() if k.lower() == "retry-after"})
    return page


def bars(counts: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """Each count with its bar's width, the largest at full width (for the `bar_chart` macro)."""
    most = max((n for _, n in counts), default=0) or 1
    return [(label, n, round(BAR_WIDTH * n / most)) for label, n in counts]


async def who(db: AsyncConnection[Any], principal: Principal) -> Any:
    """The signed-in person for the header (an API token shows as such)."""
    if principal.kind == "user":
        return await users.get_user(db, principal.token_id)
    return {"email": "API token", "role": principal.role.value}


def form_day(field: str, value: str | None) -> dt.date | None:
    """A day from a filter form's query. The form sends its empty fields too (`since=`), and such links get
    shared, so an empty field means no filter rather than a 422."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidField(field, "a day as YYYY-MM-DD") from None


def form_uuid(field: str, value: str | None) -> uuid.UUID | None:
    """An id from a filter form's query (a select's "all" option sends `segment_id=`): empty is no filter."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidField(field, "a UUID") from None


def day_range(since: dt.date | None, until: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The instants a page's `since`..`until` days (both included, China's time) start and end at."""
    for field, day in (("since", since), ("until", until)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidField(field, f"a day from {FIRST_DAY} to {LAST_DAY}")
    start = dt.datetime.combine(since, dt.time(), CHINA) if since else None
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), CHINA) if until else None
    return start, end
