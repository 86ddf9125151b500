"""Granian vs uvicorn serving the same OneCode app: requests/s and latency on /healthz, printed.

Run: python tests/bench/bench_servers.py  (needs wrk, PostgreSQL and Redis; uvicorn installed for the
comparison only: pip install 'uvicorn[standard]'). Why it exists: `onecode serve` uses granian, and
that choice should rest on a number.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DURATION = os.environ.get("BENCH_DURATION", "10s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(port: int) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def measure(name: str, command: list[str], port: int) -> tuple[float, str]:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "ONECODE_ACCESS_LOG": "false",
        "ONECODE_AUTO_MIGRATE": "false",
    }
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(port)
        out = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{DURATION}", "--latency", f"http://127.0.0.1:{port}/healthz"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    print(f"{name:10s} {rps:10.0f} req/s   p99 {p99}")
    return rps, p99


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    port = free_port()
    granian = measure(
        "granian", [sys.executable, "-m", "service", "serve", "--port", str(port), "--no-migrate"], port
    )
    port = free_port()
    uvicorn = measure(
        "uvicorn",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "service.asgi:app_from_env",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        port,
    )
    print(f"granian / uvicorn = {granian[0] / uvicorn[0]:.2f}")


if __name__ == "__main__":
    main()
