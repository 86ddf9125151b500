"""Seed load-test codes through the public admin API and cache their scan URLs so re-runs reuse them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import string
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codegen.gtin import check_digit
from service.demo import DEMO_SLUG

DEFAULT_CODES = 20_000
SEED_DIR = Path(__file__).resolve().parent / ".seed"
# First scans reserve codes in blocks and record a block before handing out any code of it: a killed run
# wastes at most one block, and never hands out a code it may already have scanned as a fresh one.
RESERVE_BLOCK = 500
# The export of 20,000 codes takes well under a second; this is for much larger seeds on slow machines.
TIMEOUT_S = 120
_BATCH_HEADER = "# batch "
_CAMPAIGN_HEADER = "# campaign "
_UNACTIVATED_HEADER = "# unactivated-from "
# The last codes of a seeded batch stay unshipped: scans of them must answer not_activated.
UNACTIVATED_SHARE = 0.02
CampaignChoice = Literal["none", "points", "draw", "both"]
# A draw's prize stock: small enough that a promotion-sized run sells it out (stock must never go negative).
DRAW_STOCK = 200


class SeedError(Exception):
    """Seeding cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Seed:
    """A batch of codes issued for load tests, as its scan URLs, and the file that caches them.

    Codes from `unactivated_from` on were never shipped; the campaigns reward this batch's product only.
    """

    batch_id: str
    urls: list[str]
    path: Path
    unactivated_from: int | None = None
    campaign_ids: tuple[str, ...] = ()

    @property
    def activated(self) -> list[str]:
        return self.urls if self.unactivated_from is None else self.urls[: self.unactivated_from]

    @property
    def unactivated(self) -> list[str]:
        return [] if self.unactivated_from is None else self.urls[self.unactivated_from :]


def default_token(env: dict[str, str] | None = None) -> str:
    """ONECODE_TOKEN, else the token `onecode demo` (or `serve --demo`) wrote into $ONECODE_HOME."""
    env = dict(os.environ) if env is None else env
    if token := env.get("ONECODE_TOKEN", "").strip():
        return token
    # The same default home as service.settings, so a server started from this directory is found.
    token_file = Path(env.get("ONECODE_HOME", ".onecode")) / "demo-token"
    try:
        return token_file.read_text().strip()
    except FileNotFoundError:
        raise SeedError(
            f"no token: pass --token, set ONECODE_TOKEN, or start the server with --demo "
            f"(it writes {token_file}; set ONECODE_HOME to the server's)"
        ) from None


LOADTEST_SLUG = "loadtest"


def loadtest_brand_token(base_url: str, platform_token: str, slug: str = LOADTEST_SLUG) -> str:
    """A fresh one-day brand_admin token of the deployment's load-test brand, made on first use.

    Needs a platform_admin token; a brand with that slug that is not a load-test brand is refused.
    """
    api = Api(base_url, platform_token)
    after = ""
    while True:
        page = api.json("GET", f"/v1/brands?limit=1000{after}")
        brand = next((b for b in page["items"] if b["slug"] == slug), None)
        if brand is not None or page["next_cursor"] is None:
            break
        after = f"&after={page['next_cursor']}"
    if brand is None:
        brand = api.json("POST", "/v1/brands", {"slug": slug, "name": "Load test", "is_loadtest": True})
    elif not brand["is_loadtest"]:
        raise SeedError(f"brand {slug!r} exists and is not a load-test brand: pick another slug")
    issued = api.json(
        "POST", f"/v1/brands/{brand['id']}/tokens", {"role": "brand_admin", "name": "load kit", "ttl_days": 1}
    )
    return str(issued["secret"])


def loadtest_gtin() -> str:
    """A random valid GTIN-14 with a GS1 restricted-circulation prefix (20-29), never a real product's."""
    payload = "02" + "".join(random.choices(string.digits, k=11))
    return payload + str(check_digit(payload))


def cache_path(seed_dir: Path, base_url: str, quantity: int, campaign: CampaignChoice = "none") -> Path:
    host = urllib.parse.urlsplit(base_url).netloc.replace(":", "-")
    suffix = "" if campaign == "none" else f"-{campaign}"
    return seed_dir / f"{host}-{quantity}{suffix}.txt"


def seed(
    base_url: str,
    token: str,
    quantity: int = DEFAULT_CODES,
    seed_dir: Path = SEED_DIR,
    campaign: CampaignChoice = "none",
) -> Seed:
    """The cached batch for this server and size while it is usable there, else a newly issued one.

    `campaign` also makes live campaigns for the batch's product: a points campaign, a lucky draw with
    a small prize stock, or both (stackable, so one first scan may earn points and a draw).
    """
    api = Api(base_url, token)
    path = cache_path(seed_dir, base_url, quantity, campaign)
    cached = _read_cache(path)
    if cached is not None and _still_usable(api, cached):
        return cached
    _check_loadtest_brand(api)
    return _issue(api, path, quantity, campaign)


class FreshCodes:
    """Codes of a seed never handed out for a first scan, in this run or an earlier one on the same cache."""

    def __init__(self, seed: Seed) -> None:
        self._urls = seed.activated
        self._cursor_file = _cursor_file(seed.path)
        self._next = _read_cursor(self._cursor_file)
        self._reserved_until = self._next

    def __len__(self) -> int:
        return len(self._urls) - self._next

    def take(self) -> str | None:
        """The next unscanned code, or None once the batch is used up."""
        if self._next >= len(self._urls):
            return None
        if self._next >= self._reserved_until:
            self._reserved_until = min(self._next + RESERVE_BLOCK, len(self._urls))
            _write_atomically(self._cursor_file, f"{self._reserved_until}\n")
        url = self._urls[self._next]
        self._next += 1
        return url

    def take_block(self, size: int) -> list[str]:
        """Up to `size` unscanned codes at once (for a worker process of a distributed run)."""
        block: list[str] = []
        while len(block) < size and (url := self.take()) is not None:
            block.append(url)
        return block


class Api:
    """The few admin API calls seeding needs, over urllib (no dependency beyond the standard library)."""

    def __init__(self, base_url: str, token: str) -> None:
        if urllib.parse.urlsplit(base_url).scheme not in {"http", "https"}:
            raise SeedError(f"the host must be an http(s) URL, got {base_url!r}")
        self._base = base_url.rstrip("/")
        self._token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        return self.call_with_headers(method, path, body)[0]

    def call_with_headers(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked to be http(s) above
            self._base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - as above
                payload: bytes = response.read()
                return payload, dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            raise _ApiError(method, path, exc.code, exc.read()[:500].decode(errors="replace")) from None
        except urllib.error.URLError as exc:
            raise SeedError(f"{method} {self._base}{path}: {exc.reason}") from None

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return json.loads(self.call(method, path, body))


class _ApiError(SeedError):
    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {detail}")
        self.status = status


def _still_usable(api: Api, cached: Seed) -> bool:
    """The cached batch exists on this server (a fresh database does not have it), is not voided, has
    unscanned codes, and its campaigns can still reward (live, budget left, the draw not sold out):
    a run against spent campaigns would skip the award path and look faster than launch day."""
    try:
        batch = api.json("GET", f"/v1/batches/{cached.batch_id}")
    except _ApiError as exc:
        if exc.status == 404:  # noqa: PLR2004 - HTTP status
            return False
        raise
    if batch["status"] == "voided" or len(FreshCodes(cached)) == 0:
        return False
    for campaign_id in cached.campaign_ids:
        stats = api.json("GET", f"/v1/campaigns/{campaign_id}/stats")
        stock_left = sum(int(p["stock"]) - int(p["awarded"]) for p in stats["prizes"])
        if stats["status"] != "active" or int(stats["spend"]["remaining_cents"]) <= 0:
            return False
        if stats["prizes"] and stock_left <= 0:
            return False
    return True


def _check_loadtest_brand(api: Api) -> None:
    """Only load-test brands (or the local demo brand) get load-test products, batches and scans."""
    brands = api.json("GET", "/v1/brands")["items"]
    if len(brands) != 1:
        raise SeedError("the token must be a brand_admin token of one brand, not a platform token")
    brand = brands[0]
    if not brand["is_loadtest"] and brand["slug"] != DEMO_SLUG:
        raise SeedError(
            f"brand {brand['slug']!r} is not a load-test brand: its reports would fill with fake scans. "
            "Use a brand made with `onecode brand create --loadtest` (or the demo brand)."
        )


def _issue(api: Api, path: Path, quantity: int, campaign: CampaignChoice) -> Seed:
    """A new product and batch through the admin API, exported as TXT (one scan URL a line) into `path`."""
    started = dt.datetime.now(dt.UTC)
    product = api.json(
        "POST",
        "/v1/products",
        {
            "name": f"Load test {started:%Y-%m-%d %H:%M:%S}",
            "gtin": loadtest_gtin(),
            "facts": {"loadtest": True},
        },
    )
    batch = api.json(
        "POST", "/v1/batches", {"product_id": product["id"], "quantity": quantity, "lot": "LOADTEST"}
    )
    # Codes are inert until shipped: ship the batch to the load-test distributor (all of China), all but
    # a small tail, which stays unactivated (a leaked print file's codes, scanned before shipping).
    shipped = quantity - int(quantity * UNACTIVATED_SHARE)
    distributor = _loadtest_distributor(api)
    api.json(
        "POST",
        "/v1/shipments",
        {
            "distributor_id": distributor,
            "reference": "LOADTEST",
            "items": [{"batch_id": batch["id"], "start": 0, "stop": shipped}],
        },
    )
    urls = api.call("GET", f"/v1/batches/{batch['id']}/codes?format=txt").decode().split()
    if len(urls) != quantity:
        raise SeedError(f"the export of batch {batch['id']} held {len(urls)} codes, expected {quantity}")
    campaign_ids = _launch_campaigns(api, product["id"], campaign, started)
    header = [_BATCH_HEADER + batch["id"], f"{_UNACTIVATED_HEADER}{shipped}"]
    header += [_CAMPAIGN_HEADER + campaign_id for campaign_id in campaign_ids]
    _write_atomically(path, "\n".join(header + urls) + "\n")
    # A new batch: none of its codes was handed out yet.
    _cursor_file(path).unlink(missing_ok=True)
    return Seed(
        batch_id=batch["id"], urls=urls, path=path, unactivated_from=shipped, campaign_ids=campaign_ids
    )


def _launch_campaigns(api: Api, product_id: str, choice: CampaignChoice, now: dt.datetime) -> tuple[str, ...]:
    """Live campaigns for the load-test product only: points per first scan, and/or a lucky draw."""
    common = {
        "starts_at": (now - dt.timedelta(minutes=1)).isoformat(),
        "ends_at": (now + dt.timedelta(days=30)).isoformat(),
        "budget_cents": 10**10,
        "stackable": True,
        "eligibility": {"product_ids": [product_id]},
    }
    bodies = []
    if choice in {"points", "both"}:
        bodies.append({**common, "name": f"Load test points {now:%H:%M:%S}", "kind": "points",
                       "points_reward": {"points": 10}})  # fmt: skip
    if choice in {"draw", "both"}:
        prize = {
            "name": "Load test prize",
            "kind": "physical",
            "weight": 1,
            "stock": DRAW_STOCK,
            "cost_cents": 100,
        }
        bodies.append({**common, "name": f"Load test draw {now:%H:%M:%S}", "kind": "lucky_draw",
                       "prizes": [prize], "no_prize_weight": 9, "priority": 1})  # fmt: skip
    launched = []
    for body in bodies:
        created = api.json("POST", "/v1/campaigns", body)
        api.json("POST", f"/v1/campaigns/{created['id']}:activate")
        launched.append(str(created["id"]))
    return tuple(launched)


LOADTEST_DISTRIBUTOR = "Load test distributor"


def distributor_token(base_url: str, brand_token: str) -> str:
    """A one-day `distributor` token of the brand's load-test distributor (its reports are scoped to it)."""
    api = Api(base_url, brand_token)
    body = {"role": "distributor", "name": "load kit distributor", "ttl_days": 1}
    issued = api.json("POST", "/v1/tokens", {**body, "distributor_id": _loadtest_distributor(api)})
    return str(issued["secret"])


def _loadtest_distributor(api: Api) -> str:
    """The brand's load-test distributor (all of China), made on first use."""
    after = ""
    while True:
        page = api.json("GET", f"/v1/distributors?limit=1000{after}")
        for distributor in page["items"]:
            if distributor["name"] == LOADTEST_DISTRIBUTOR:
                return str(distributor["id"])
        if page["next_cursor"] is None:
            break
        after = f"&after={page['next_cursor']}"
    created = api.json("POST", "/v1/distributors", {"name": LOADTEST_DISTRIBUTOR, "regions": ["CN"]})
    return str(created["id"])


def _read_cache(path: Path) -> Seed | None:
    try:
        lines = [line for line in path.read_text().split("\n") if line]
    except FileNotFoundError:
        return None
    if not lines or not lines[0].startswith(_BATCH_HEADER):
        return None
    unactivated_from = None
    campaign_ids = []
    for line in lines[1:]:
        if line.startswith(_UNACTIVATED_HEADER):
            unactivated_from = int(line.removeprefix(_UNACTIVATED_HEADER))
        elif line.startswith(_CAMPAIGN_HEADER):
            campaign_ids.append(line.removeprefix(_CAMPAIGN_HEADER))
    return Seed(
        batch_id=lines[0].removeprefix(_BATCH_HEADER),
        urls=[line for line in lines if not line.startswith("#")],
        path=path,
        unactivated_from=unactivated_from,
        campaign_ids=tuple(campaign_ids),
    )


def _cursor_file(path: Path) -> Path:
    return path.with_suffix(".used")


def _read_cursor(path: Path) -> int:
    try:
        return int(path.read_text())
    except FileNotFoundError:
        return 0


def _write_atomically(path: Path, text: str) -> None:
    # A run killed mid-write must not leave a truncated cache that looks valid.
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text)
    temp.replace(path)


def main(argv: list[str] | None = None) -> None:
    """`python -m loadtests.seeding http://127.0.0.1:8000`: seed (or reuse) codes, print the cache file."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("host", help="base URL of the OneCode server")
    parser.add_argument("--codes", type=int, default=DEFAULT_CODES, help="codes in the batch")
    parser.add_argument("--token", default=None, help="brand_admin token (default: ONECODE_TOKEN, demo's)")
    parser.add_argument("--seed-dir", type=Path, default=SEED_DIR, help="where seeds are cached")
    args = parser.parse_args(argv)
    try:
        seeded = seed(args.host, args.token or default_token(), args.codes, args.seed_dir)
    except SeedError as exc:
        parser.exit(1, f"seeding failed: {exc}\n")
    print(f"{len(FreshCodes(seeded))} of {len(seeded.urls)} codes unscanned, batch {seeded.batch_id}")
    print(seeded.path)


if __name__ == "__main__":
    main()
