"""Promotion-day traffic: consumers (page, then scan), a bot swarm, marketers and distributors.

Run it through `onecode loadtest run` (thresholds, summary, reconciliation), or with locust directly.
Run against a server that trusts X-Forwarded-For (see README, "Load testing"): every simulated phone
then comes from its own address, as on a promotion day, instead of all from 127.0.0.1, where the
per-IP limit (600 scans a minute by default) would throttle the whole run.

Distributed runs (`--master`/`--worker`, or `--processes N`): the master seeds and hands each worker
blocks of unscanned codes on request, so no code is scanned "first" twice; workers report what they
were told (verdicts, rewards) to the master with their stats.
"""

from __future__ import annotations

import logging
import random
import uuid
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

# gevent ships no type information; locust runs on it and depends on it.
import gevent  # type: ignore[import-untyped]
from gevent.event import Event  # type: ignore[import-untyped]
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtests import summary
from loadtests.mix import DEFAULT_MIX, parse_mix
from loadtests.results import Endpoint, RunResults
from loadtests.seeding import (
    DEFAULT_CODES,
    SEED_DIR,
    FreshCodes,
    Seed,
    SeedError,
    default_token,
    distributor_token,
    seed,
)

logger = logging.getLogger("onecode.loadtest")

SCANS = "/v1/scans"
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SERIAL_LENGTH = 20
REPEAT_VERDICTS = frozenset({"genuine_repeat", "suspect_clone"})
# More than the default device limit (30 scans a minute), sent back to back.
BOT_BURST = 40
# A worker asks the master for this many unscanned codes at a time.
CODE_BLOCK = 200
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
    """What the users of one process share: seeded codes, unscanned ones, scanned ones, what was seen."""

    def __init__(self, seeded: Seed | None, unactivated: list[str], campaign_ids: list[str]) -> None:
        self.fresh = FreshCodes(seeded) if seeded is not None else None
        # A worker's unscanned codes, handed over by the master a block at a time.
        self.block: list[str] = []
        self.block_arrived = Event()
        self.unactivated = unactivated
        self.campaign_ids = campaign_ids
        self.scanned: list[Scanned] = []
        self.results = RunResults()
        self.warned_empty = False

    def take(self, environment: Environment) -> str | None:
        if self.fresh is not None:
            return self.fresh.take()
        if not self.block:
            self.block_arrived.clear()
            assert environment.runner is not None
            environment.runner.send_message("codes_wanted", CODE_BLOCK)
            self.block_arrived.wait(timeout=10)
        return self.block.pop() if self.block else None

    def any_url(self) -> str | None:
        """A genuine URL to forge from: one this process scanned, or one still to hand out."""
        if self.scanned:
            return random.choice(self.scanned).url
        return self.block[-1] if self.block else None


CODES: Codes | None = None
# The master's results (and a single process's): the workers' reports are merged into them.
RESULTS = RunResults()


# locust's EventHook.add_listener is unannotated, hence the ignores on these decorators.
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
        "--campaign",
        choices=["none", "points", "draw", "both"],
        default="none",
        help="live campaigns the seed makes for its product",
    )
    parser.add_argument(
        "--mix", default=DEFAULT_MIX, help=f"consumer actions' weights (default {DEFAULT_MIX})"
    )
    parser.add_argument("--kit-results", default="", help="write what the run was told (JSON) to this file")
    parser.add_argument(
        "--spread-hosts",
        default="",
        help="comma-separated base URLs of several service processes; each user talks to one of them",
    )
    parser.add_argument(
        "--max-p99-ms", type=float, default=None, help="exit 1 if a request name's p99 is above this"
    )
    parser.add_argument(
        "--max-fail-ratio", type=float, default=None, help="exit 1 if failures/requests is above this"
    )


@events.init.add_listener  # type: ignore[untyped-decorator]
def _register_messages(environment: Environment, **_kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message("codes_wanted", _hand_out_codes)
    if isinstance(runner, WorkerRunner):
        runner.register_message("seeded", _seeded_by_master)
        runner.register_message("codes", _codes_from_master)


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _seed(environment: Environment, **_kwargs: Any) -> None:
    global CODES  # noqa: PLW0603 - state shared by every user of this process, replaced per test
    if isinstance(environment.runner, WorkerRunner):
        return  # the master seeds and sends what a worker needs ("seeded", then "codes" on request)
    options = environment.parsed_options
    assert options is not None, "the kit runs from the locust command line"
    try:
        token = options.token or default_token()
        seeded = seed(
            environment.host or "", token, options.seed_codes, Path(options.seed_dir), options.campaign
        )
        parse_mix(options.mix)
    except (SeedError, ValueError) as exc:
        logger.error("seeding failed: %s", exc)  # noqa: TRY400 - the message is the whole story
        environment.process_exit_code = 1
        # Quitting from inside test_start would race the spawning that follows it.
        if environment.runner is not None:
            gevent.spawn(environment.runner.quit)
        return
    CODES = Codes(seeded, seeded.unactivated, list(seeded.campaign_ids))
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message(
            "seeded", {"unactivated": seeded.unactivated, "campaign_ids": list(seeded.campaign_ids)}
        )
    assert CODES.fresh is not None
    logger.info("seeded: %d of %d codes unscanned (%s)", len(CODES.fresh), len(seeded.urls), seeded.path)


def _seeded_by_master(msg: Any, **_kwargs: Any) -> None:
    global CODES  # noqa: PLW0603
    CODES = Codes(None, msg.data["unactivated"], msg.data["campaign_ids"])


def _hand_out_codes(environment: Environment, msg: Any, **_kwargs: Any) -> None:
    block = CODES.fresh.take_block(int(msg.data)) if CODES is not None and CODES.fresh is not None else []
    assert environment.runner is not None
    environment.runner.send_message("codes", block, client_id=msg.node_id)


def _codes_from_master(msg: Any, **_kwargs: Any) -> None:
    if CODES is not None:
        CODES.block.extend(msg.data)
        CODES.block_arrived.set()


@events.report_to_master.add_listener  # type: ignore[untyped-decorator]
def _report(data: dict[str, Any], **_kwargs: Any) -> None:
    if CODES is not None:
        data["onecode"] = CODES.results.drain()


@events.worker_report.add_listener  # type: ignore[untyped-decorator]
def _collect(data: dict[str, Any], **_kwargs: Any) -> None:
    if "onecode" in data:
        RESULTS.merge(data["onecode"])


def _codes() -> Codes:
    if CODES is None:
        raise StopUser  # seeding failed (the runner is quitting), or a worker's seed is on its way
    return CODES


def new_device() -> str:
    return f"lt-{uuid.uuid4().hex}"


def random_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def random_phone() -> str:
    return "139" + "".join(random.choices("0123456789", k=8))


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


class _SpreadUser(FastHttpUser):
    """A user that talks to one of --spread-hosts (several processes behind no balancer), else to --host."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        options = environment.parsed_options
        hosts = [h for h in (options.spread_hosts if options is not None else "").split(",") if h]
        if hosts:
            self.host = random.choice(hosts)
        super().__init__(environment)


class Consumer(_SpreadUser):
    """Phones on a promotion day: each action is another phone that opens the printed URL, then scans."""

    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.actions, self.weights = parse_mix(options.mix if options is not None else DEFAULT_MIX)

    @task
    def consume(self) -> None:
        action = random.choices(self.actions, self.weights)[0]
        getattr(self, f"_{action}")()

    def page(self, url: str, name: str) -> None:
        """The page the phone opens: a small HTML page, for genuine and forged codes alike."""
        with self.client.get(
            urlsplit(url).path, name=name, headers={"Accept-Language": "zh-CN"}, catch_response=True
        ) as response:
            if response.status_code == 200 and "text/html" in response.headers.get("Content-Type", ""):  # noqa: PLR2004
                response.success()
            else:
                response.failure(f"expected a 200 HTML page, got {response.status_code}")

    def scan(self, name: str, code: str, device_id: str, member_token: str | None = None) -> Any:
        # One locust user plays many phones: the member cookie of an earlier scan must not ride along.
        self.client.cookiejar.clear()
        body = {"code": code, "device_id": device_id}
        if member_token is not None:
            body["member_token"] = member_token
        try:
            return self.client.post(
                SCANS, json=body, headers={"X-Forwarded-For": random_ip()}, name=name, catch_response=True
            )
        except (
            gevent.GreenletExit
        ):  # the run stopped while this scan was in flight: it may have been committed
            _codes().results.cut_off += 1
            raise

    def checked(self, response: Any, expected: frozenset[str] | str) -> dict[str, Any] | None:
        """The answer when it has the expected verdict and a well-formed reward; else a failure."""
        codes = _codes()
        wanted = frozenset({expected}) if isinstance(expected, str) else expected
        body = _body(response)
        if response.status_code != 200:  # noqa: PLR2004
            if response.status_code == 0 or response.status_code >= 500:  # noqa: PLR2004
                codes.results.unanswered += 1  # it may have been recorded, rewards and all
            _unexpected(response, f"200 {' or '.join(sorted(wanted))}")
            return None
        if not codes.results.record_answer(body):
            response.failure("malformed answer: no verdict, or a reward without points/outcomes")
            return None
        if body["verdict"] not in wanted:
            _unexpected(response, f"200 {' or '.join(sorted(wanted))}")
            return None
        response.success()
        return body

    def _first(self) -> None:
        """An unscanned code from a new device: must be genuine_first."""
        codes = _codes()
        code = codes.take(self.environment)
        if code is None:
            if not codes.warned_empty:
                codes.warned_empty = True
                logger.warning("every seeded code was handed out: run with a larger --seed-codes")
            return
        self.page(code, "page")
        device = new_device()
        with self.scan("scan first", code, device) as response:
            body = self.checked(response, "genuine_first")
            if body is not None:
                codes.scanned.append(Scanned(code, device, body.get("member_token")))

    def _repeat(self) -> None:
        """A scanned code again: half by its first phone, half by other phones (what a copy looks like)."""
        codes = _codes()
        if not codes.scanned:
            return
        first = random.choice(codes.scanned)
        self.page(first.url, "page")
        if random.random() < 0.5:  # noqa: PLR2004 - half and half
            context = self.scan("scan repeat", first.url, first.device_id, first.member_token)
        else:
            context = self.scan("scan repeat", first.url, new_device())
        with context as response:
            self.checked(response, REPEAT_VERDICTS)

    def _forged(self) -> None:
        """A genuine code with one serial character changed: must be counterfeit."""
        url = _codes().any_url()
        if url is None:
            return
        code = forge(url)
        self.page(code, "page forged")
        with self.scan("scan forged", code, new_device()) as response:
            self.checked(response, "counterfeit")

    def _unactivated(self) -> None:
        """A genuine code never shipped (a leaked print file): must be not_activated."""
        codes = _codes()
        if not codes.unactivated:
            return
        code = random.choice(codes.unactivated)
        self.page(code, "page")
        with self.scan("scan unactivated", code, new_device()) as response:
            self.checked(response, "not_activated")

    def _enrol(self) -> None:
        """A first scan, then the phone asks for an OTP; a mistyped OTP must be refused (422).

        The development SMS adapter keeps codes on the server, out of a load generator's reach: the
        OTP send path (limits, storage, outbox) is what this puts under load.
        """
        codes = _codes()
        code = codes.take(self.environment)
        if code is None:
            return
        device = new_device()
        with self.scan("scan first", code, device) as response:
            body = self.checked(response, "genuine_first")
        if body is None:
            return
        codes.scanned.append(Scanned(code, device, body.get("member_token")))
        phone, address = random_phone(), random_ip()
        member = {"phone": phone, "member_token": body.get("member_token")}
        headers = {"X-Forwarded-For": address}
        with self.client.post(
            "/v1/members/otp", json=member, headers=headers, name="enrol otp", catch_response=True
        ) as response:
            if response.status_code != 202:  # noqa: PLR2004
                _unexpected(response, "202")
                return
            response.success()
        wrong = {**member, "otp": "000000", "consent_marketing": False, "consent_location": False}
        with self.client.post(
            "/v1/members/enroll", json=wrong, headers=headers, name="enrol wrong otp", catch_response=True
        ) as response:
            if response.status_code == 422 and _body(response).get("type", "").endswith("otp-rejected"):  # noqa: PLR2004
                response.success()
            else:
                _unexpected(response, "422 otp-rejected")


class Bot(_SpreadUser):
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


class _Staff(_SpreadUser):
    """Someone at the brand with a token: headers for its requests."""

    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        token = (options.token if options is not None else "") or default_token()
        self.headers = {"Authorization": f"Bearer {token}"}

    def read(self, path: str, name: str) -> None:
        with self.client.get(path, headers=self.headers, name=name, catch_response=True) as response:
            if response.status_code == 200:  # noqa: PLR2004
                response.success()
            else:
                _unexpected(response, "200")


class Marketer(_Staff):
    """A marketer with the campaigns' live statistics open, refreshing them."""

    fixed_count = 1
    wait_time = between(3, 6)

    @task
    def campaign_stats(self) -> None:
        codes = _codes()
        for campaign_id in codes.campaign_ids:
            self.read(f"/v1/campaigns/{campaign_id}/stats", "campaign stats")


class Distributor(_Staff):
    """The load-test distributor, with a token of its own, pulling its grey-market reports."""

    fixed_count = 1
    wait_time = between(5, 10)

    def on_start(self) -> None:
        super().on_start()
        try:
            token = distributor_token(self.host or "", self.headers["Authorization"].removeprefix("Bearer "))
        except SeedError as exc:
            logger.error("no distributor token: %s", exc)  # noqa: TRY400 - the message is the whole story
            raise StopUser from None
        self.headers = {"Authorization": f"Bearer {token}"}

    @task
    def reports(self) -> None:
        self.read("/v1/reports/diversion?limit=100", "report diversion")
        self.read("/v1/reports/scans?by=region", "report scans by region")


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _finish(environment: Environment, **_kwargs: Any) -> None:
    """Write what the run was told (--kit-results); check --max-p99-ms and --max-fail-ratio."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return
    if CODES is not None:
        RESULTS.merge(CODES.results.drain())
    stats = environment.stats
    RESULTS.endpoints = [
        Endpoint(
            name=entry.name,
            requests=entry.num_requests,
            failures=entry.num_failures,
            per_second=entry.total_rps,
            p50=entry.get_response_time_percentile(0.5),
            p95=entry.get_response_time_percentile(0.95),
            p99=entry.get_response_time_percentile(0.99),
        )
        for entry in [*sorted(stats.entries.values(), key=lambda e: e.name), stats.total]
    ]
    if options.kit_results:
        RESULTS.write(Path(options.kit_results))
    breaches = summary.breaches(
        RESULTS.endpoints, max_p99_ms=options.max_p99_ms, max_error_rate=options.max_fail_ratio
    )
    for breach in breaches:
        logger.error("threshold exceeded: %s", breach)
    if breaches:
        environment.process_exit_code = 1
