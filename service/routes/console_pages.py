"""The web console's pages, server-rendered (Jinja2, autoescaped) from templates in `service/pages/`.

The console so far: sign-in, the dashboard, member search and a member's page. Pages use the same session
cookie and role checks as the API (see service/guards.py); a distributor's session cannot open brand pages
(403).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

import jinja2
import msgspec
from litestar import Request, Response, Router, get
from litestar.enums import MediaType
from litestar.response import Redirect
from psycopg import AsyncConnection

from antifraud import reports
from campaigns.members import kpis
from service import users
from service.db import fetch_all, fetch_one
from service.guards import ANY_BRAND_ROLE, CONSOLE_COOKIE, brand_of, principal_from, require_token, roles
from service.models import Principal, Role
from service.queries import load_queries
from service.routes import member_admin
from service.routes.consumer import pick_language

QUERIES = load_queries("service.sql", "console.sql")
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("service", "pages"), autoescape=True, undefined=jinja2.StrictUndefined
)
# Brand pages: every brand role but the distributor's portal and the till's.
BRAND_PAGE_ROLES = tuple(ANY_BRAND_ROLE - {Role.DISTRIBUTOR, Role.POINT_OF_SALE})
BAR_WIDTH: Final = 380

# ruff: noqa: RUF001 - Chinese text uses fullwidth punctuation
TEXTS: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "sign_in": "登录 OneCode 控制台",
        "email": "邮箱",
        "password": "密码",
        "totp": "动态验证码（如已开启）",
        "submit": "登录",
        "failed": "邮箱或密码错误。",
        "need_totp": "请输入身份验证器中的 6 位动态验证码。",
        "too_many": "尝试次数过多，请稍后再试。",
        "offline": "网络连接失败，请检查网络后重试。",
        "dashboard": "概览",
        "scans_today": "今日扫码",
        "scans_week": "近 7 天扫码",
        "clone_alerts": "疑似复制码（7 天）",
        "counterfeit": "伪造码扫描（7 天）",
        "members": "会员总数",
        "mau": "月活会员",
        "verdict_mix": "近 7 天扫码结果",
        "campaigns": "进行中的活动",
        "campaign": "活动",
        "status": "状态",
        "spend": "已花费 / 预算（元）",
        "no_campaigns": "暂无进行中的活动。",
        "genuine_first": "正品·首次",
        "genuine_repeat": "正品·重复",
        "suspect_clone": "疑似复制",
        "not_activated": "未激活",
        "counterfeit_verdict": "伪造",
        "search_phone": "按手机号查找会员",
        "search": "查找",
        "bad_phone": "请输入有效的手机号。",
        "search_failed": "查找失败，请重新登录后再试。",
        "no_member": "没有找到该手机号的会员。",
        "phone": "手机号",
        "tier": "等级",
        "lifecycle": "生命周期",
        "points": "积分余额",
        "scans": "扫码次数",
        "timeline": "会员时间线",
        "when": "时间",
        "what": "类型",
        "detail": "详情",
        "nothing_yet": "暂无记录。",
        "stage_new": "新会员",
        "stage_active": "活跃",
        "stage_dormant": "沉睡",
        "stage_churned": "流失",
        "kind_scan": "扫码",
        "kind_points": "积分",
        "kind_coupon": "优惠券",
        "kind_draw": "抽奖",
        "kind_tier": "等级变化",
        "kind_note": "客服备注",
        "distributor": "经销商",
        "portal": "经销商门户",
        "portal_lead": "您的货品在授权区域外被扫码（窜货）：",
        "diversions": "窜货扫码（30 天）",
        "by_week": "按周",
        "events": "窜货记录",
        "csv": "导出 CSV",
        "region": "扫码地区",
        "product": "产品",
        "lot": "批号",
        "case": "箱码",
        "no_diversions": "近 30 天没有窜货记录。",
    },
    "en": {
        "sign_in": "Sign in to the OneCode console",
        "email": "Email",
        "password": "Password",
        "totp": "Authenticator code (if enabled)",
        "submit": "Sign in",
        "failed": "Wrong email or password.",
        "need_totp": "Enter the 6-digit code from your authenticator app.",
        "too_many": "Too many attempts; try again in a few minutes.",
        "offline": "Could not reach the server; check the connection and try again.",
        "dashboard": "Dashboard",
        "scans_today": "Scans today",
        "scans_week": "Scans, last 7 days",
        "clone_alerts": "Clone suspects (7 days)",
        "counterfeit": "Counterfeit scans (7 days)",
        "members": "Members",
        "mau": "Monthly active members",
        "verdict_mix": "Scan verdicts, last 7 days",
        "campaigns": "Live campaigns",
        "campaign": "Campaign",
        "status": "Status",
        "spend": "Spent / budget (CNY)",
        "no_campaigns": "No live campaigns.",
        "genuine_first": "Genuine, first",
        "genuine_repeat": "Genuine, repeat",
        "suspect_clone": "Clone suspect",
        "not_activated": "Not activated",
        "counterfeit_verdict": "Counterfeit",
        "search_phone": "Find a member by phone number",
        "search": "Search",
        "bad_phone": "Enter a valid phone number.",
        "search_failed": "The search failed; sign in again and retry.",
        "no_member": "No member has this phone number.",
        "phone": "Phone",
        "tier": "Tier",
        "lifecycle": "Lifecycle",
        "points": "Points balance",
        "scans": "Scans",
        "timeline": "Timeline",
        "when": "When",
        "what": "What",
        "detail": "Detail",
        "nothing_yet": "Nothing yet.",
        "stage_new": "New",
        "stage_active": "Active",
        "stage_dormant": "Dormant",
        "stage_churned": "Churned",
        "kind_scan": "Scan",
        "kind_points": "Points",
        "kind_coupon": "Coupon",
        "kind_draw": "Draw",
        "kind_tier": "Tier change",
        "kind_note": "Service note",
        "distributor": "distributor",
        "portal": "Distributor portal",
        "portal_lead": "Scans of your goods outside your territory (diversion):",
        "diversions": "Diverted scans (30 days)",
        "by_week": "By week",
        "events": "Diversion events",
        "csv": "Export CSV",
        "region": "Scan region",
        "product": "Product",
        "lot": "Lot",
        "case": "Case",
        "no_diversions": "No diversion in the last 30 days.",
    },
}


class _ScanSummary(msgspec.Struct, frozen=True):
    today: int
    week: int
    genuine_first: int
    genuine_repeat: int
    suspect_clone: int
    not_activated: int
    counterfeit: int


class _LiveCampaign(msgspec.Struct, frozen=True):
    id: Any
    name: str
    kind: str
    status: str
    spent_cents: int
    budget_cents: int


def _render(request: Request[Any, Any, Any], name: str, **context: Any) -> Response[str]:
    lang = pick_language(request.headers.get("accept-language"))
    page = TEMPLATES.get_template(name).render(lang=lang, t=TEXTS[lang], **context)
    return Response(
        page,
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


@get("/console", include_in_schema=False)
async def console_home(request: Request[Any, Any, Any]) -> Redirect:
    signed_in = CONSOLE_COOKIE in request.cookies
    return Redirect("/console/dashboard" if signed_in else "/console/sign-in")


@get("/console/sign-in", include_in_schema=False)
async def sign_in_page(request: Request[Any, Any, Any]) -> Response[str]:
    lang = pick_language(request.headers.get("accept-language"))
    return _render(request, "console_sign_in.html", title=TEXTS[lang]["sign_in"])


@get("/console/dashboard", opt=roles(*BRAND_PAGE_ROLES), include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Scans today and this week, the verdict mix, alerts, live campaigns' spend, member figures."""
    principal = principal_from(request)
    brand_id = brand_of(principal)
    now = dt.datetime.now(dt.UTC)
    scans = await fetch_one(db, QUERIES["scan_summary"], {"brand_id": brand_id, "now": now}, _ScanSummary)
    assert scans is not None
    live = await fetch_all(db, QUERIES["live_campaigns"], {"brand_id": brand_id}, _LiveCampaign)
    figures = await kpis.kpis(db, brand_id, range_from=now - dt.timedelta(days=30), range_to=now, now=now)
    lang = pick_language(request.headers.get("accept-language"))
    texts = TEXTS[lang]
    mix = [
        (texts["genuine_first"], scans.genuine_first),
        (texts["genuine_repeat"], scans.genuine_repeat),
        (texts["suspect_clone"], scans.suspect_clone),
        (texts["not_activated"], scans.not_activated),
        (texts["counterfeit_verdict"], scans.counterfeit),
    ]
    return _render(
        request,
        "console_dashboard.html",
        title=texts["dashboard"],
        user=await _who(db, principal),
        scans=scans,
        verdicts=_bars(mix),
        campaigns=live,
        kpis=figures,
    )


@get("/console/members", opt=roles(*member_admin.READERS), include_in_schema=False)
async def members_page(request: Request[Any, Any, Any], db: AsyncConnection[Any]) -> Response[str]:
    """Find a member by phone (the page posts the number; it never goes into a URL)."""
    lang = pick_language(request.headers.get("accept-language"))
    return _render(
        request,
        "console_members.html",
        title=TEXTS[lang]["members"],
        user=await _who(db, principal_from(request)),
    )


@get("/console/members/{member_id:uuid}", opt=roles(*member_admin.READERS), include_in_schema=False)
async def member_page(
    request: Request[Any, Any, Any], db: AsyncConnection[Any], member_id: uuid.UUID
) -> Response[str]:
    """One member: profile as the role may see it (full reads audited, as on the API) and the timeline."""
    principal = principal_from(request)
    member = await member_admin.read_profile(request, db, principal, member_id)
    timeline = await member_admin.visible_timeline(
        request, db, principal, member_id, before=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), limit=50
    )
    return _render(
        request,
        "console_member.html",
        title=member.name or member.phone or str(member.id),
        user=await _who(db, principal),
        member=member,
        timeline=timeline,
    )


@get("/console/portal", opt=roles(Role.DISTRIBUTOR), include_in_schema=False)
async def portal(request: Request[Any, Any, Any], report_db: AsyncConnection[Any]) -> Response[str]:
    """A distributor's own diversion events (its territory only, as the report API scopes them)."""
    principal = principal_from(request)
    now = dt.datetime.now(dt.UTC)
    scope = reports.ReportFilter(
        brand_id=brand_of(principal),
        since=now - dt.timedelta(days=reports.DEFAULT_DAYS),
        until=now,
        only_distributor=principal.distributor_id,
    )
    found = await reports.report(report_db, scope, before=None, limit=100)
    weekly = [(c.key or "", c.events) for c in found.totals.by_week]
    lang = pick_language(request.headers.get("accept-language"))
    return _render(
        request,
        "console_portal.html",
        title=TEXTS[lang]["portal"],
        user=await _who(report_db, principal),
        report=found,
        total=sum(c.events for c in found.totals.by_distributor),
        weeks=_bars(weekly),
    )


def _bars(counts: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """Each count with its bar's width, the largest at full width (for the `bar_chart` macro)."""
    most = max((n for _, n in counts), default=0) or 1
    return [(label, n, round(BAR_WIDTH * n / most)) for label, n in counts]


async def _who(db: AsyncConnection[Any], principal: Principal) -> Any:
    """The signed-in person for the header (an API token shows as such)."""
    if principal.kind == "user":
        return await users.get_user(db, principal.token_id)
    return {"email": "API token", "role": principal.role.value}


def console_pages_router() -> Router:
    return Router(
        "/",
        route_handlers=[
            console_home,
            sign_in_page,
            Router(
                "/", route_handlers=[dashboard, members_page, member_page, portal], guards=[require_token]
            ),
        ],
    )
