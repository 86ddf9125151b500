"""Scan benchmark: a bare litestar endpoint vs the real `POST /v1/scans`, in one run on this machine.

Run:  python -m loadtests.bench_scan              (about 1.5 minutes; needs wrk: apt-get install wrk)
      python -m loadtests.bench_scan --runs 3     (three runs and their medians: this machine is noisy)
      python -m loadtests.bench_scan --soak 300   (adds a 5-minute run sampling the worker's memory)
      python -m loadtests.bench_scan --campaigns  (adds first scans with two active campaigns)
      python -m loadtests.bench_scan --located    (adds first scans that share the phone's location)

It creates a fresh database on BENCH_DATABASE_URL's server (default: the local PostgreSQL), seeds a
load-test brand with one batch in process, starts each server with the same granian settings as
`onecode serve` (one worker each), and drives it with wrk at 64 connections from one thread. Every
first scan comes from a new device (so each one also creates an anonymous member, the costliest case);
the repeat phase re-scans codes the first phase claimed, from the same devices. Requests carry a
varying X-Forwarded-For, as they would behind a load balancer, so the per-IP limit does not trip.

With --campaigns, a last phase activates a points campaign and a lucky draw (1 in 10 wins) on the
benchmark product and runs first scans again: every scan is then rewarded in its transaction.

With --located, a phase of first scans sends a location (one of eight Chinese cities) as a phone
does after consent: all of anti-fraud's work then runs (the offline geocoder finds the province, the
code's region sketch and travel check run in the same Redis call, the region is logged).

Printed: requests/s, p50/p99 and non-2xx count per phase, the ratios to the bare endpoint (and of
the campaign phase to plain first scans), and with --soak the worker's resident memory over time.
Then the CPU each phase cost per request, by who spent it (the server's processes, PostgreSQL's,
Redis's and wrk's, as /proc counts them on this machine), how busy that kept the machine, and the
ratio to the bare endpoint that full use of the machine would give at those costs: where a target is
out of reach, it says whether the work per request or idle time is what stands in the way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from campaigns import campaigns, draws
from campaigns.campaigns import CampaignIn, PointsReward
from codegen import batches, products
from codegen.models import BatchIn, ProductIn
from codegen.printing import load_printing
from service import brands
from service.migrations import migrate
from service.models import BrandIn
from service.settings import Settings

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BENCH_DB = "onecode_bench"
REDIS_PREFIX = "onecode-bench:"
SCAN_DOMAIN = "s.onecode.test"
CONNECTIONS = 64
SAMPLES_A_MINUTE = 5  # of the soak's RSS samples (one every 10 s), for a minute to count as whole

WRK_SCRIPT = r"""
-- One thread: walks the code file in order; args: <codes file> [located]
local codes = {}
local n = 0
local located = false
-- Hangzhou, Shanghai, Guangzhou, Nanjing, Chengdu, Beijing, Wuhan, Xi'an.
local cities = {{30.27, 120.16}, {31.23, 121.47}, {23.13, 113.26}, {32.06, 118.79},
                {30.66, 104.07}, {39.90, 116.40}, {30.59, 114.31}, {34.34, 108.94}}
function init(args)
  for line in io.lines(args[1]) do codes[#codes + 1] = line end
  located = args[2] == "located"
end
function request()
  n = n + 1
  local i = ((n - 1) % #codes) + 1
  local code, device = codes[i]:match("([^ ]+) ([^ ]+)")
  local ip = "10." .. (i % 250) .. "." .. (math.floor(i / 250) % 250) .. "."
    .. (math.floor(i / 62500) % 250 + 1)
  local place = ""
  if located then
    -- Around a city: within about 30 km, so the service's per-kilometre region cache sees
    -- thousands of distinct cells, as a national promotion's scans would give it.
    local city = cities[(i % #cities) + 1]
    local lat = city[1] + ((i * 7919) % 61 - 30) / 100
    local lng = city[2] + ((i * 104729) % 61 - 30) / 100
    place = ',"location":{"lat":' .. lat .. ',"lng":' .. lng .. ',"accuracy_m":30}'
  end
  local body = '{"code":"' .. code .. '","device_id":"' .. device .. '"' .. place .. '}'
  return wrk.format("POST", "/v1/scans",
    {["Content-Type"] = "application/json", ["X-Forwarded-For"] = ip}, body)
end
"""


@dataclass(frozen=True)
class CpuUse:
    """CPU time per request during a phase (microseconds), by who spent it."""

    server_us: float
    postgres_us: float
    redis_us: float
    wrk_us: float

    @property
    def total_us(self) -> float:
        return self.server_us + self.postgres_us + self.redis_us + self.wrk_us


@dataclass(frozen=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int
    cpu: CpuUse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured phase")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up before each phase")
    parser.add_argument("--soak", type=int, default=0, help="also run first scans this long, sampling RSS")
    parser.add_argument("--runs", type=int, default=1, help="repeat bare/first/repeat; medians are printed")
    parser.add_argument("--campaigns", action="store_true", help="add first scans with two live campaigns")
    parser.add_argument("--located", action="store_true", help="add first scans that send a location")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="onecode-bench-"))
    script = workdir / "scan.lua"
    script.write_text(WRK_SCRIPT)
    database_url = fresh_database()
    # Generous: more codes than the fastest plausible run scans, so no first scan is ever a repeat.
    per_phase = 6000 * (args.duration + args.warmup)
    phases = phase_count(args)
    urls = seed(database_url, per_phase * phases * args.runs + 6000 * args.soak)
    print(f"seeded {len(urls):,} codes into {BENCH_DB}")
    forget_redis_keys()

    runs: list[list[Result]] = []
    for run in range(args.runs):
        # Each run gets codes of its own: a first scan is always the code's first.
        start = run * phases * per_phase
        run_urls = urls[start : start + phases * per_phase]
        soak_urls = urls[args.runs * phases * per_phase :] if run == args.runs - 1 and args.soak else []
        runs.append(one_run(script, workdir, database_url, run_urls, soak_urls, args, tag=f"r{run}"))
        if args.campaigns:
            end_campaigns(database_url)
        report(runs[-1], f"run {run + 1} of {args.runs}")
    if args.runs > 1:
        report(
            [
                Result(
                    name=phase[0].name,
                    rps=statistics.median(r.rps for r in phase),
                    p50_ms=statistics.median(r.p50_ms for r in phase),
                    p99_ms=statistics.median(r.p99_ms for r in phase),
                    non_2xx=sum(r.non_2xx for r in phase),
                    requests=sum(r.requests for r in phase),
                    cpu=CpuUse(
                        server_us=statistics.median(r.cpu.server_us for r in phase),
                        postgres_us=statistics.median(r.cpu.postgres_us for r in phase),
                        redis_us=statistics.median(r.cpu.redis_us for r in phase),
                        wrk_us=statistics.median(r.cpu.wrk_us for r in phase),
                    ),
                )
                for phase in zip(*runs, strict=True)
            ],
            f"medians of {args.runs} runs (ratios of the medians)",
        )
    shutil.rmtree(workdir, ignore_errors=True)
    # A million code counters left behind would slow every SCAN of a shared Redis (the tests' cleanup).
    forget_redis_keys()


def one_run(
    script: Path,
    workdir: Path,
    database_url: str,
    urls: list[str],
    soak_urls: list[str],
    args: argparse.Namespace,
    *,
    tag: str,
) -> list[Result]:
    """The bare endpoint, then the real one (first scans, then repeats of the codes just claimed)."""
    per_phase = len(urls) // phase_count(args)
    results: list[Result] = []
    bare_port = free_port()
    with server(bare_command(bare_port), bare_port, env_for(database_url, workdir)) as bare:
        warm = write_codes(workdir / "bare-warm.txt", urls[:50_000], f"{tag}-bare-warm")
        run_wrk(script, warm, bare, bare_port, args.warmup, "warm-up")
        codes = write_codes(workdir / "bare.txt", urls[:50_000], f"{tag}-bare")
        results.append(run_wrk(script, codes, bare, bare_port, args.duration, "bare litestar"))

    real_port = free_port()
    env = env_for(database_url, workdir)
    with server(real_command(real_port), real_port, env) as proc:
        warm_urls, first_urls = urls[:per_phase], urls[per_phase : 2 * per_phase]
        warm = write_codes(workdir / "warm.txt", warm_urls, f"{tag}-warm")
        run_wrk(script, warm, proc, real_port, args.warmup, "warm-up")
        before = claims(database_url)
        codes = write_codes(workdir / "first.txt", first_urls, f"{tag}-dev")
        first = run_wrk(script, codes, proc, real_port, args.duration, "first scans")
        scanned = claims(database_url) - before
        if scanned >= len(first_urls):
            raise SystemExit("the first-scan phase ran out of codes; raise the per-phase allowance")
        results.append(first)
        repeat_file = write_codes(workdir / "repeat.txt", first_urls[:scanned], f"{tag}-dev")
        results.append(run_wrk(script, repeat_file, proc, real_port, args.duration, "repeat scans"))
        if args.located:
            located_urls = urls[2 * per_phase : 3 * per_phase]
            codes = write_codes(workdir / "located.txt", located_urls, f"{tag}-loc")
            results.append(
                run_wrk(script, codes, proc, real_port, args.duration, "first, located", located=True)
            )
        if args.campaigns:
            campaign_urls = urls[(phase_count(args) - 1) * per_phase :]
            start_campaigns(database_url, tag)
            time.sleep(2.5)  # each worker's campaign book reloads every second
            codes = write_codes(workdir / "campaigns.txt", campaign_urls, f"{tag}-camp")
            with_campaigns = run_wrk(script, codes, proc, real_port, args.duration, "first, 2 campaigns")
            if rewarded(database_url) == 0:
                raise SystemExit("no scan was rewarded: the campaigns did not go live")
            results.append(with_campaigns)
        if soak_urls:
            soak(
                script,
                write_codes(workdir / "soak.txt", soak_urls, f"{tag}-soak"),
                real_port,
                proc.pid,
                args.soak,
            )
    return results


def phase_count(args: argparse.Namespace) -> int:
    """Phases that need codes of their own: first scans (and their repeats), located, campaigns."""
    return 2 + int(args.located) + int(args.campaigns)


def start_campaigns(database_url: str, tag: str) -> None:
    """A points campaign and a lucky draw on every product, stackable, live now, never out of budget."""

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
            cur = await conn.execute("SELECT id FROM brands WHERE slug = 'bench'")
            row = await cur.fetchone()
            assert row is not None
            await add_campaigns(conn, row[0], tag)

    asyncio.run(run())


async def add_campaigns(conn: psycopg.AsyncConnection[Any], brand_id: uuid.UUID, tag: str) -> None:
    """The benchmark's two campaigns (see start_campaigns), made and activated on `conn`."""
    settings = bench_settings()
    now = dt.datetime.now(dt.UTC)
    starts_at, ends_at = now - dt.timedelta(minutes=1), now + dt.timedelta(days=1)
    prize = draws.PrizeIn(name="Bench cooler", kind="physical", weight=1, stock=10_000_000, cost_cents=100)
    bodies = [
        CampaignIn(
            name=f"bench points {tag}",
            kind="points",
            budget_cents=10**12,
            stackable=True,
            points_reward=PointsReward(points=10),
            starts_at=starts_at,
            ends_at=ends_at,
        ),
        CampaignIn(
            name=f"bench draw {tag}",
            kind="lucky_draw",
            budget_cents=10**12,
            stackable=True,
            prizes=[prize],
            no_prize_weight=9,
            starts_at=starts_at,
            ends_at=ends_at,
        ),
    ]

    for body in bodies:
        campaign = await campaigns.create_campaign(conn, actor="bench", brand_id=brand_id, data=body)
        await campaigns.transition(
            conn,
            actor="bench",
            brand_id=brand_id,
            campaign_id=campaign.id,
            action="activate",
            master_keys=settings.all_master_keys,
            now=now,
        )


def rewarded(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM points_awards").fetchone()
    return int(row[0]) if row else 0


def end_campaigns(database_url: str) -> None:
    """The next run starts without campaigns (its plain phases must not reward)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE campaigns SET status = 'paused' WHERE status = 'active'")


def forget_redis_keys() -> None:
    """Start without the last benchmark's counters; only this benchmark's keys (Redis may be shared)."""
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000):
        client.delete(key)
    client.close()


def fresh_database() -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    url = psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=BENCH_DB)
    migrate(url)
    return url


def seed(database_url: str, count: int) -> list[str]:
    settings = bench_settings()

    async def run() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
            brand = await brands.create_brand(
                conn, actor="bench", data=BrandIn(slug="bench", name="Bench Brewery", is_loadtest=True)
            )
            product = await products.create_product(
                conn,
                actor="bench",
                brand_id=brand.id,
                data=ProductIn(name="Bench Lager", gtin="06901234567892", facts={"origin": "Qingdao"}),
            )
            batch = await batches.create_batch(
                conn,
                actor="bench",
                brand_id=brand.id,
                data=BatchIn(product_id=product.id, quantity=count, lot="BENCH-1", activation="on_issue"),
                master_key=settings.master_key,
            )
            printing = await load_printing(conn, brand.id, batch.id, settings.all_master_keys)
        return [url for chunk in printing.codes(SCAN_DOMAIN, 0, count) for _, _, url in chunk]

    return asyncio.run(run())


def bench_settings() -> Settings:
    return Settings.from_env({"ONECODE_MASTER_KEY": _bench_master_key(), "ONECODE_HOME": "/nonexistent"})


def _bench_master_key() -> str:
    # Fixed for the benchmark database only: the servers and the seeding must agree on it.
    return "YmVuY2gtbWFzdGVyLWtleS1ub3QtZm9yLXByb2R1Y3Q="


def write_codes(path: Path, urls: list[str], device_prefix: str) -> Path:
    with path.open("w") as handle:
        for n, url in enumerate(urls):
            handle.write(f"{url} {device_prefix}-{n:08d}\n")
    return path


def env_for(database_url: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ONECODE_REDIS_PREFIX": REDIS_PREFIX,
        "ONECODE_HOME": str(workdir / "home"),
        "ONECODE_MASTER_KEY": _bench_master_key(),
        "ONECODE_SCAN_DOMAIN": SCAN_DOMAIN,
        "ONECODE_ACCESS_LOG": "false",
        "ONECODE_AUTO_MIGRATE": "false",
        "ONECODE_TRUST_FORWARDED_FOR": "true",
        "ONECODE_WORKERS": "1",
    }


def bare_command(port: int) -> list[str]:
    # The same granian settings `onecode serve` uses, around the bare app.
    code = (
        "from granian import Granian; "
        f"Granian('loadtests.bare_app:create_bare_app', address='127.0.0.1', port={port}, workers=1, "
        "interface='asgi', factory=True, log_access=False, backlog=2048).serve()"
    )
    return [sys.executable, "-c", code]


def real_command(port: int) -> list[str]:
    return [sys.executable, "-m", "service", "serve", "--port", str(port), "--no-migrate"]


@contextlib.contextmanager
def server(command: list[str], port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_up(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/scans", data=b"{}", headers={"Content-Type": "application/json"}
    )
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            urllib.request.urlopen(request, timeout=1)  # noqa: S310 - our own local server
        except urllib.error.HTTPError:
            return  # it answered (a 4xx for the empty body): up
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise SystemExit(f"server on {port} did not start")


def run_wrk(
    script: Path,
    codes: Path,
    target: subprocess.Popen[bytes],
    port: int,
    seconds: int,
    name: str,
    *,
    located: bool = False,
) -> Result:
    before, wrk_before = cpu_seconds(target.pid), _children_cpu_s()
    out = subprocess.run(
        [
            "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            "-s", str(script), f"http://127.0.0.1:{port}", "--", str(codes),
            "located" if located else "plain",
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after, wrk_after = cpu_seconds(target.pid), _children_cpu_s()
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    non_2xx = int(_find(r"Non-2xx or 3xx responses:\s+(\d+)", out, "0"))
    requests = int(_find(r"(\d+) requests in", out))
    # The "Latency Distribution" lines, e.g. "     99%   41.20ms" (other lines also end in "%").
    p50, p99 = _ms(_find(r"(?m)^\s+50%\s+(\S+)", out)), _ms(_find(r"(?m)^\s+99%\s+(\S+)", out))
    per_request = 1e6 / max(1, requests)
    cpu = CpuUse(
        server_us=(after["server"] - before["server"]) * per_request,
        postgres_us=(after["postgres"] - before["postgres"]) * per_request,
        redis_us=(after["redis"] - before["redis"]) * per_request,
        wrk_us=(wrk_after - wrk_before) * per_request,
    )
    return Result(name, rps, p50, p99, non_2xx, requests, cpu)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds spent so far by the server's processes and by this machine's PostgreSQL and Redis.

    PostgreSQL's includes its background writers (the WAL writer flushes the group commits); a backend
    that exits during a phase takes its time with it (the benchmark's connections stay open).
    """
    server = set(descendants(server_pid))
    spent = {"server": 0.0, "postgres": 0.0, "redis": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if int(entry.name) in server:
            spent["server"] += seconds
        elif command.startswith("postgres"):
            spent["postgres"] += seconds
        elif command.startswith("redis-server"):
            spent["redis"] += seconds
    return spent


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children: wrk's, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def soak(script: Path, codes: Path, port: int, server_pid: int, seconds: int) -> None:
    """First scans for `seconds`, the worker's RSS sampled every 10 s: it should level off, not climb."""
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}",
         "--", str(codes)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples: list[tuple[int, int]] = []
    started = time.monotonic()
    while wrk.poll() is None:
        worker_rss = max(rss_kib(pid) for pid in descendants(server_pid))
        samples.append((int(time.monotonic() - started), worker_rss))
        time.sleep(10)
    out = wrk.communicate()[0]
    rate = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    print(f"\nsoak: {rate:,.0f} first scans/s for {seconds} s")
    print("worker RSS (MiB) every 10 s: " + " ".join(f"{kib / 1024:.0f}" for _, kib in samples))
    # Each minute's lowest sample is the worker at rest; the member refresh (every minute) lifts it for
    # a few seconds. Resting memory that climbs from minute to minute is a leak; peaks that come back
    # down are the refresh's working memory.
    minutes: dict[int, list[int]] = {}
    for at, kib in samples:
        minutes.setdefault(at // 60, []).append(kib)
    # Whole minutes only (a sample every 10 s): a last partial minute may be all refresh.
    whole = [
        values
        for minute, values in sorted(minutes.items())
        if minute >= 1 and len(values) >= SAMPLES_A_MINUTE
    ]
    resting = [min(values) for values in whole]
    if resting:
        shown = " ".join(f"{kib / 1024:.0f}" for kib in resting)
        growth, peak = (resting[-1] - resting[0]) / 1024, max(kib for _, kib in samples) / 1024
        print(f"resting RSS by minute after the first (MiB): {shown}; growth {growth:+.1f} MiB")
        print(f"peak RSS: {peak:.0f} MiB")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def claims(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM code_claims").fetchone()
    return int(row[0]) if row else 0


def report(results: list[Result], title: str) -> None:
    bare = results[0]
    print(f"\n{title}")
    print(f"{'phase':18s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s} {'vs bare':>8s}")
    for r in results:
        ratio = r.rps / bare.rps
        print(f"{r.name:18s} {r.rps:9,.0f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} {r.non_2xx:8d} {ratio:8.0%}")
    by_name = {r.name: r for r in results}
    if "first, located" in by_name:
        kept = by_name["first, located"].rps / by_name["first scans"].rps
        print(
            f"first scans with every anti-fraud check (located): {kept:.0%} of plain first scans"
            " (target >= 85%)"
        )
    if "first, 2 campaigns" in by_name:
        kept = by_name["first, 2 campaigns"].rps / by_name["first scans"].rps
        print(f"first scans with two live campaigns: {kept:.0%} of first scans without (target >= 85%)")
    print(f"({CONNECTIONS} connections, one granian worker each, wrk on the same machine)")
    report_cpu(results)


def report_cpu(results: list[Result]) -> None:
    """Where each phase's CPU went, and what full use of this machine would give at those costs."""
    cores = os.cpu_count() or 1
    bare = results[0]
    print(f"\nCPU per request (us) on this {cores}-core machine; busy = share of all cores in use")
    print(
        f"{'phase':18s} {'server':>7s} {'postgres':>8s} {'redis':>6s} {'wrk':>6s} {'total':>7s} "
        f"{'busy':>5s} {'at 100% busy':>13s}"
    )
    for r in results:
        busy = r.cpu.total_us * r.rps / (cores * 1e6)
        # At these costs and every core busy, the phase would do cores / total requests a second; as a
        # ratio to the bare endpoint run the same way, that is bare's cost over this phase's.
        best = bare.cpu.total_us / r.cpu.total_us if r.cpu.total_us else 0.0
        print(
            f"{r.name:18s} {r.cpu.server_us:7.0f} {r.cpu.postgres_us:8.0f} {r.cpu.redis_us:6.0f} "
            f"{r.cpu.wrk_us:6.0f} {r.cpu.total_us:7.0f} {busy:5.0%} {best:9.0%} of bare"
        )
    by_name = {r.name: r for r in results}
    first = by_name.get("first scans")
    for name in ("first, located", "first, 2 campaigns"):
        if first is not None and name in by_name and by_name[name].cpu.total_us:
            best = first.cpu.total_us / by_name[name].cpu.total_us
            print(f"{name}: at 100% busy, {best:.0%} of first scans")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is not None:
            return default
        raise SystemExit(f"wrk output lacks {pattern!r}:\n{text}")
    return match.group(1)


def _ms(value: str) -> float:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        raise SystemExit(f"unexpected latency {value!r}")
    return float(match.group(1)) * units[match.group(2)]


if __name__ == "__main__":
    main()
