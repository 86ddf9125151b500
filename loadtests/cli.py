"""`onecode loadtest seed|run`: the load kit from the command line, with pass/fail for CI and launch day."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import click

from loadtests import reconcile, summary
from loadtests.mix import parse_mix
from loadtests.results import RunResults
from loadtests.seeding import (
    DEFAULT_CODES,
    SEED_DIR,
    Api,
    CampaignChoice,
    SeedError,
    default_token,
    loadtest_brand_token,
    seed,
)

KIT = Path(__file__).resolve().parent
SHAPES = {
    "constant": None,
    "launch-spike": KIT / "shapes" / "launch_spike.py",
    "steady-day": KIT / "shapes" / "steady_day.py",
}
CAMPAIGNS = list(get_args(CampaignChoice))


def _token(target: str, token: str | None, platform_token: str | None) -> str:
    """The brand_admin token to seed and run with: given, minted with a platform token, or the demo's."""
    try:
        if token:
            return token
        if platform_token:
            return loadtest_brand_token(target, platform_token)
        return default_token()
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None


def platform_token_option(command: Any) -> Any:
    return click.option(
        "--platform-token",
        default=None,
        envvar="ONECODE_PLATFORM_TOKEN",
        help="Without --token: a platform_admin token; the kit then makes (or reuses) brand 'loadtest' "
        "and a one-day brand_admin token for it. Prefer the ONECODE_PLATFORM_TOKEN variable.",
    )(command)


@click.group("loadtest")
def loadtest() -> None:
    """Seed a deployment for load tests and run promotion-day traffic against it."""


@loadtest.command("seed")
@click.option("--target", required=True, help="Base URL of the deployment, e.g. https://staging.example.com.")
@click.option(
    "--token",
    default=None,
    envvar="ONECODE_TOKEN",
    help="brand_admin token of a load-test brand; prefer the ONECODE_TOKEN variable (argv is visible to ps).",
)
@platform_token_option
@click.option("--codes", type=click.IntRange(min=10), default=DEFAULT_CODES, show_default=True)
@click.option("--campaign", type=click.Choice(CAMPAIGNS), default="both", show_default=True)
@click.option("--seed-dir", type=click.Path(path_type=Path), default=SEED_DIR, show_default=True)
def seed_command(
    target: str,
    token: str | None,
    platform_token: str | None,
    codes: int,
    campaign: CampaignChoice,
    seed_dir: Path,
) -> None:
    """Create (or reuse) the load-test product, batch, shipment and campaigns; write the codes file."""
    try:
        seeded = seed(target, _token(target, token, platform_token), codes, seed_dir, campaign)
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"batch {seeded.batch_id}: {len(seeded.activated)} activated codes, {len(seeded.unactivated)} not"
    )
    for campaign_id in seeded.campaign_ids:
        click.echo(f"campaign {campaign_id}")
    click.echo(f"codes file: {seeded.path}")


# What locust's -t takes: hours, minutes and seconds in that order, or plain seconds.
RUN_TIME = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?|(\d+)")


def _run_time(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Checked here: locust would only say what is wrong in its log, after the kit seeded its codes."""
    match = RUN_TIME.fullmatch(value.strip())
    if not match or not any(int(part) for part in match.groups() if part):
        raise click.BadParameter(f"{value!r} is not a run time such as 30s, 5m or 1h30m")
    return value.strip()


@loadtest.command("run")
@click.option(
    "--target",
    "targets",
    required=True,
    multiple=True,
    help="Base URL of the deployment under test; repeat it to spread users over several processes.",
)
@click.option(
    "--token",
    default=None,
    envvar="ONECODE_TOKEN",
    help="brand_admin token of a load-test brand; prefer the ONECODE_TOKEN variable (argv is visible to ps).",
)
@click.option("--users", type=click.IntRange(min=1), default=50, show_default=True, help="Users (the peak).")
@click.option("--spawn-rate", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option(
    "--duration", default="1m", show_default=True, callback=_run_time, help="Run time: 30s, 5m, 1h30m."
)
@click.option("--shape", type=click.Choice(list(SHAPES)), default="constant", show_default=True)
@click.option(
    "--mix",
    default=None,
    help="Consumer actions' weights, e.g. first=60,repeat=25,forged=5,unactivated=5,enrol=5.",
)
@click.option("--max-p99-ms", type=float, default=None, help="Fail when any endpoint's p99 is above this.")
@click.option(
    "--max-error-rate",
    type=float,
    default=None,
    help="Fail when failures/requests is above this (0.01 = 1%).",
)
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, help="Local worker processes (0: one process)."
)
@platform_token_option
@click.option("--codes", type=click.IntRange(min=10), default=DEFAULT_CODES, show_default=True)
@click.option("--campaign", type=click.Choice(CAMPAIGNS), default="both", show_default=True)
@click.option("--seed-dir", type=click.Path(path_type=Path), default=SEED_DIR, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report directory (default loadtests/runs/<time>).",
)
def run_command(
    targets: tuple[str, ...],
    token: str | None,
    platform_token: str | None,
    users: int,
    spawn_rate: float,
    duration: str,
    shape: str,
    mix: str | None,
    max_p99_ms: float | None,
    max_error_rate: float | None,
    workers: int,
    codes: int,
    campaign: CampaignChoice,
    seed_dir: Path,
    out: Path | None,
) -> None:
    """Run headless; write locust's HTML report and CSV stats; print a summary; reconcile rewards.

    Exits 1 when locust failed, a threshold was missed or the reconciliation found a difference.
    """
    if mix:
        try:
            parse_mix(mix)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--mix") from None
    target = targets[0]  # seeding and the reconciliation use the first; they share one database
    secret = _token(target, token, platform_token)
    out = out or KIT / "runs" / dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    try:
        seeded = seed(target, secret, codes, seed_dir, campaign)
        api = Api(target, secret)
        before = reconcile.snapshot(api, seeded.campaign_ids)
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    files = ",".join(str(f) for f in (KIT / "locustfile.py", SHAPES[shape]) if f is not None)
    command = [
        sys.executable, "-m", "locust", "-f", files, "--host", target, "--headless",
        "-u", str(users), "-r", str(spawn_rate), "-t", duration, "--only-summary",
        "--html", str(out / "report.html"), "--csv", str(out / "stats"),
        "--seed-codes", str(codes), "--seed-dir", str(seed_dir), "--campaign", campaign,
        "--kit-results", str(out / "results.json"),
        *(["--mix", mix] if mix else []), *(["--processes", str(workers)] if workers else []),
        *(["--spread-hosts", ",".join(targets)] if len(targets) > 1 else []),
    ]  # fmt: skip
    # The token travels in the environment, never on a command line others can read.
    with (out / "locust.log").open("w") as log:
        env = {**os.environ, "ONECODE_TOKEN": secret}
        locust = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    report, passed = _judge(api, before, out, locust.returncode, max_p99_ms, max_error_rate)
    (out / "summary.txt").write_text("\n".join(report) + "\n")
    click.echo("\n".join(report))
    if not passed:
        sys.exit(1)


def _judge(
    api: Api,
    before: reconcile.Snapshot,
    out: Path,
    returncode: int,
    max_p99_ms: float | None,
    max_error_rate: float | None,
) -> tuple[list[str], bool]:
    """The one-screen report of a finished run, and whether it passed."""
    if not (out / "results.json").exists():
        raise click.ClickException(
            f"locust exited with {returncode} before writing results: see {out / 'locust.log'}"
        )
    results = RunResults.read(out / "results.json")
    endpoints = results.endpoints
    try:
        found = reconcile.reconcile(api, before, results)
    except SeedError as exc:
        raise click.ClickException(f"reconciliation failed: {exc}") from None
    missed = summary.breaches(endpoints, max_p99_ms=max_p99_ms, max_error_rate=max_error_rate)
    passed = returncode == 0 and not missed and found.ok
    report = [
        summary.render(endpoints, results, found.lines),
        "",
        *(f"threshold missed: {m}" for m in missed),
    ]
    if returncode != 0:
        report.append(f"locust exited with {returncode}: see {out / 'locust.log'}")
    report.append(f"{'PASS' if passed else 'FAIL'}  (report: {out / 'report.html'})")
    return report, passed
