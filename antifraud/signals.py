"""Scan signals in Redis: velocity limits per device and IP, and per-code counters and device sketches.

Redis holds hints, never truth: a flush loses recent counters, which only makes limits briefly lenient
and clone signals briefly weaker. First-scan decisions belong to PostgreSQL (see scanlog).
"""

from __future__ import annotations

import hashlib
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
from redis.exceptions import NoScriptError

from antifraud.errors import Throttled

if TYPE_CHECKING:
    import uuid

    from redis.asyncio import Redis


def _lua(name: str) -> str:
    return resources.files("antifraud.lua").joinpath(name).read_text(encoding="utf-8")


class Limits(msgspec.Struct, frozen=True):
    device_per_minute: int = 30
    ip_per_minute: int = 600
    # Forged codes are logged for intelligence, but one source cannot flood the log.
    counterfeit_logs_per_ip_minute: int = 20
    code_signal_ttl_s: int = 90 * 24 * 3600


class CodeSignals(msgspec.Struct, frozen=True):
    scans: int
    distinct_devices: int


class ScanSignals(msgspec.Struct, frozen=True):
    code: CodeSignals | None
    log_counterfeit: bool


class Signals:
    """Each scan costs one pipelined round trip of EVALSHA calls.

    The scripts are loaded once; a Redis that lost them (restart, flush of scripts) answers NOSCRIPT,
    and the scripts are loaded again and the pipeline retried. redis-py's Script objects would instead
    ask SCRIPT EXISTS before every pipeline: one more round trip per scan.
    """

    def __init__(self, redis: Redis, *, prefix: str, limits: Limits) -> None:
        self._redis = redis
        self._prefix = prefix
        self.limits = limits
        self._scripts = {name: _lua(name) for name in ("window_counter.lua", "code_signals.lua")}
        self._window = hashlib.sha1(self._scripts["window_counter.lua"].encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._code = hashlib.sha1(self._scripts["code_signals.lua"].encode()).hexdigest()  # noqa: S324

    async def _load_scripts(self) -> None:
        for source in self._scripts.values():
            await self._redis.script_load(source)

    async def repair_count(self, code: tuple[uuid.UUID, int, int], scans: int) -> None:
        """PostgreSQL knows more scans than Redis (a flush or restart): put the truth back."""
        tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
        await self._redis.set(f"{self._prefix}{tag}:n", scans, ex=self.limits.code_signal_ttl_s)

    async def on_scan(
        self,
        *,
        device_id: str,
        ip: str | None,
        code: tuple[uuid.UUID, int, int] | None,
    ) -> ScanSignals:
        """Count the scan against its device and IP (Throttled above the limits) and its code."""
        try:
            replies = await self._run_pipeline(device_id, ip, code)
        except NoScriptError:
            await self._load_scripts()
            replies = await self._run_pipeline(device_id, ip, code)
        device_count, device_ttl = replies[0]
        if device_count > self.limits.device_per_minute:
            raise Throttled("too many scans from this device", retry_after=max(1, device_ttl))
        if ip is not None:
            ip_count, ip_ttl = replies[1]
            if ip_count > self.limits.ip_per_minute:
                raise Throttled("too many scans from this network", retry_after=max(1, ip_ttl))
        last = replies[-1]
        if code is not None:
            return ScanSignals(
                code=CodeSignals(scans=int(last[0]), distinct_devices=int(last[1])), log_counterfeit=False
            )
        return ScanSignals(
            code=None, log_counterfeit=int(last[0]) <= self.limits.counterfeit_logs_per_ip_minute
        )

    async def _run_pipeline(
        self, device_id: str, ip: str | None, code: tuple[uuid.UUID, int, int] | None
    ) -> list[Any]:
        minute = int(time.time() // 60)
        p = self._prefix
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._window, 1, f"{p}v:d:{{{device_id}}}:{minute}", 60)
            if ip is not None:
                pipe.evalsha(self._window, 1, f"{p}v:ip:{{{ip}}}:{minute}", 60)
            if code is not None:
                tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
                pipe.evalsha(
                    self._code, 2, f"{p}{tag}:n", f"{p}{tag}:d", device_id, self.limits.code_signal_ttl_s
                )
            else:
                pipe.evalsha(self._window, 1, f"{p}v:cf:{{{ip or device_id}}}:{minute}", 60)
            replies: list[Any] = await pipe.execute()
        return replies
