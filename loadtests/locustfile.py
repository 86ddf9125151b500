"""Promotion-day traffic on `POST /v1/scans`: first scans, repeat scans, forged codes and a bursting bot.

Run against a server that trusts X-Forwarded-For (see README, "Load testing with locust"): every
simulated phone then comes from its own address, as on a promotion day, instead of all from 127.0.0.1,
where the per-IP limit (600 scans a minute by default) would throttle the whole run.
"""

from __future__ import annotations

import logging
import random
import uuid
from pathlib import Path
from typing import Any, NamedTuple

# gevent ships no type information; locust runs on it and depends on it.
import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtests.seeding import DEFAULT_CODES, SEED_DIR, FreshCodes, Seed, SeedError, default_token, seed

logger = logging.getLogger("onecode.loadtest")

SCANS = "/v1/scans"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SERIAL_LENGTH = 20
REPEAT_VERDICTS = frozenset({"genuine_repeat", "suspect_clone"})
# More than the default device limit (30 scans a minute), sent back to back.
BOT_BURST = 40
HINT_429 = (
    "; all phones share one address unless the server trusts X-Forwarded-For "
    "(ONECODE_TRUST_FORWARDED_FOR=true) or ONECODE_SCANS_PER_IP_MINUTE is raised"
)


class Scanned(NamedTuple):
    """A code some phone scanned first in this run, and that phone."""

    url: str
    device_id: str
    member_token: str | None


class Codes:
    """What the users of one test share: the seeded codes, the unscanned ones and the scanned ones."""

    def __init__(self, seeded: Seed) -> None:
        self.urls = seeded.urls
        self.fresh = FreshCodes(seeded)
        self.scanned: list[Scanned] = []
        self.warned_empty = False


CODES: Codes | None = None


# locust's EventHook.add_listener is unannotated, hence the ignores on these three decorators.
@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--token",
        default="",
        env_var="ONECODE_TOKEN",
        is_secret=True,
        help="brand_admin token used to seed codes (default: $ONECODE_HOME/demo-token)",
    )
    parser.add_argument("--seed-codes", type=int, default=DEFAULT_CODES, help="codes in the seeded batch")
    parser.add_argument("--seed-dir", default=str(SEED_DIR), help="where seeded scan URLs are cached")
    parser.add_argument(
        "--max-p99-ms", type=float, default=None, help="exit 1 if a request name's p99 is above this"
    )
    parser.add_argument(
        "--max-fail-ratio", type=float, default=None, help="exit 1 if failures/requests is above this"
    )


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _seed(environment: Environment, **_kwargs: Any) -> None:
    global CODES  # noqa: PLW0603 - state shared by every user of this process, replaced per test
    try:
        seeded = _seed_for(environment)
    except SeedError as exc:
        logger.error("seeding failed: %s", exc)  # noqa: TRY400 - the message is the whole story
        environment.process_exit_code = 1
        # Quitting from inside test_start would race the spawning that follows it.
        if environment.runner is not None:
            gevent.spawn(environment.runner.quit)
        return
    CODES = Codes(seeded)
    logger.info("seeded: %d of %d codes unscanned (%s)", len(CODES.fresh), len(seeded.urls), seeded.path)


def _seed_for(environment: Environment) -> Seed:
    options = environment.parsed_options
    assert options is not None, "the kit runs from the locust command line"
    if isinstance(environment.runner, MasterRunner | WorkerRunner):
        # Each worker would hand out the same "unscanned" codes: first scans would turn into repeats.
        raise SeedError("the kit runs in one locust process (no --processes, --master or --worker)")
    token = options.token or default_token()
    return seed(environment.host or "", token, options.seed_codes, Path(options.seed_dir))


def _codes() -> Codes:
    if CODES is None:
        raise StopUser  # seeding failed; the runner is quitting
    return CODES


def new_device() -> str:
    return f"lt-{uuid.uuid4().hex}"


def random_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def forge(url: str) -> str:
    """A valid-looking code: a genuine URL with one serial character changed (the tag then fails)."""
    position = len(url) - SERIAL_LENGTH + random.randrange(SERIAL_LENGTH)
    replacement = random.choice(BASE32.replace(url[position], ""))
    return url[:position] + replacement + url[position + 1 :]


def _body(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, TypeError):  # not JSON, or no body at all (a connection error)
        return {}
    return body if isinstance(body, dict) else {}


def _unexpected(response: Any, expected: str) -> None:
    """Fail with what came back, worded stably (no ids) so locust groups identical failures on one line."""
    body = _body(response)
    if "verdict" in body:
        got = f"verdict {body['verdict']} (reason {body.get('reason')})"
    elif "detail" in body:
        got = str(body["detail"])
    else:
        got = repr(getattr(response, "error", None))
    hint = HINT_429 if response.status_code == 429 else ""  # noqa: PLR2004 - HTTP status
    response.failure(f"expected {expected}, got {response.status_code}: {got}{hint}")


class Consumer(FastHttpUser):
    """Phones scanning codes on a promotion day: each task is another phone, from its own address."""

    wait_time = between(0.1, 0.5)

    def scan(self, name: str, code: str, device_id: str, member_token: str | None = None) -> Any:
        # One locust user plays many phones: the member cookie of an earlier scan must not ride along.
        self.client.cookiejar.clear()
        body = {"code": code, "device_id": device_id}
        if member_token is not None:
            body["member_token"] = member_token
        return self.client.post(
            SCANS, json=body, headers={"X-Forwarded-For": random_ip()}, name=name, catch_response=True
        )

    @task(6)
    def first_scan(self) -> None:
        """An unscanned code from a new device: must be genuine_first."""
        codes = _codes()
        code = codes.fresh.take()
        if code is None:
            if not codes.warned_empty:
                codes.warned_empty = True
                logger.warning("every seeded code was handed out: run with a larger --seed-codes")
            return
        device = new_device()
        with self.scan("scan first", code, device) as response:
            body = _body(response)
            if response.status_code == 200 and body.get("verdict") == "genuine_first":  # noqa: PLR2004
                response.success()
                codes.scanned.append(Scanned(code, device, body.get("member_token")))
            else:
                _unexpected(response, "200 genuine_first")

    @task(3)
    def repeat_scan(self) -> None:
        """A scanned code again: half by its first phone, half by other phones (what a copy looks like)."""
        codes = _codes()
        if not codes.scanned:
            return
        first = random.choice(codes.scanned)
        if random.random() < 0.5:  # noqa: PLR2004 - half and half
            context = self.scan("scan repeat", first.url, first.device_id, first.member_token)
        else:
            context = self.scan("scan repeat", first.url, new_device())
        with context as response:
            if response.status_code == 200 and _body(response).get("verdict") in REPEAT_VERDICTS:  # noqa: PLR2004
                response.success()
            else:
                _unexpected(response, "200 genuine_repeat or suspect_clone")

    @task(1)
    def forged_scan(self) -> None:
        """A genuine code with one serial character changed: must be counterfeit."""
        code = forge(random.choice(_codes().urls))
        with self.scan("scan forged", code, new_device()) as response:
            if response.status_code == 200 and _body(response).get("verdict") == "counterfeit":  # noqa: PLR2004
                response.success()
            else:
                _unexpected(response, "200 counterfeit")


class Bot(FastHttpUser):
    """One device and address replaying harvested codes in bursts: past the device limit, 429s."""

    fixed_count = 1
    wait_time = between(2, 4)

    def on_start(self) -> None:
        self.device = new_device()
        self.ip = random_ip()

    @task
    def burst(self) -> None:
        codes = _codes()
        if not codes.scanned:
            return
        for _ in range(BOT_BURST):
            code = random.choice(codes.scanned).url
            with self.client.post(
                SCANS,
                json={"code": code, "device_id": self.device},
                headers={"X-Forwarded-For": self.ip},
                name="scan bot",
                catch_response=True,
            ) as response:
                # A 429 is what this scenario is for (it must say when to come back): counted as a
                # success, under its own name so the stats show how many scans got through.
                if response.status_code == 429 and response.headers.get("Retry-After"):  # noqa: PLR2004
                    response.request_meta["name"] = "scan bot 429"
                    response.success()
                elif response.status_code == 200 and _body(response).get("verdict") in REPEAT_VERDICTS:  # noqa: PLR2004
                    response.success()
                else:
                    _unexpected(response, "429 with Retry-After, or 200 genuine_repeat")


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _check_thresholds(environment: Environment, **_kwargs: Any) -> None:
    """--max-p99-ms (each request name and the aggregate) and --max-fail-ratio: exit 1 when exceeded."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    stats = environment.stats
    breaches = []
    if options.max_fail_ratio is not None and stats.total.fail_ratio > options.max_fail_ratio:
        breaches.append(f"fail ratio {stats.total.fail_ratio:.4f} > {options.max_fail_ratio}")
    if options.max_p99_ms is not None:
        for entry in [*stats.entries.values(), stats.total]:
            p99 = entry.get_response_time_percentile(0.99)
            if entry.num_requests and p99 > options.max_p99_ms:
                breaches.append(f"{entry.name}: p99 {p99:.0f} ms > {options.max_p99_ms:.0f} ms")
    for breach in breaches:
        logger.error("threshold exceeded: %s", breach)
    if breaches:
        environment.process_exit_code = 1
