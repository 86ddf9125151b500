"""Scan signals in Redis: velocity limits per device and IP, and per-code counters and device sketches.

Redis holds hints, never truth: a flush loses recent counters, which only makes limits briefly lenient
and clone signals briefly weaker. First-scan decisions belong to PostgreSQL (see scanlog).
"""

from __future__ import annotations

import asyncio
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


Command = tuple[Any, ...]


class Signals:
    """Each scan's Redis work is a few EVALSHA calls, sent in one pipeline shared with concurrent scans.

    Requests queue their commands; one task sends everything queued as one pipeline and hands each
    request its replies (the same coalescing as the scan writer's group commit). A pipeline per request
    costs about three times more client CPU, which on the scan path is the bottleneck. Scripts are
    loaded once; a Redis that lost them answers NOSCRIPT, and they are loaded again and the batch
    retried (redis-py's Script objects would ask SCRIPT EXISTS before every pipeline instead).
    """

    def __init__(self, redis: Redis, *, prefix: str, limits: Limits, max_batch: int = 256) -> None:
        self._redis = redis
        self._prefix = prefix
        self.limits = limits
        self._max_batch = max_batch
        self._scripts = {name: _lua(name) for name in ("window_counter.lua", "code_signals.lua")}
        # Redis names scripts by their SHA-1; no security property is asked of it here.
        self._window = hashlib.sha1(self._scripts["window_counter.lua"].encode()).hexdigest()  # noqa: S324
        self._code = hashlib.sha1(self._scripts["code_signals.lua"].encode()).hexdigest()  # noqa: S324
        self._queue: asyncio.Queue[tuple[list[Command], asyncio.Future[list[Any]]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task

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
        replies = await self._call(self._commands(device_id, ip, code))
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

    def _commands(
        self, device_id: str, ip: str | None, code: tuple[uuid.UUID, int, int] | None
    ) -> list[Command]:
        minute = int(time.time() // 60)
        p = self._prefix
        commands: list[Command] = [(self._window, 1, f"{p}v:d:{{{device_id}}}:{minute}", 60)]
        if ip is not None:
            commands.append((self._window, 1, f"{p}v:ip:{{{ip}}}:{minute}", 60))
        if code is not None:
            tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
            ttl = self.limits.code_signal_ttl_s
            commands.append((self._code, 2, f"{p}{tag}:n", f"{p}{tag}:d", device_id, ttl))
        else:
            commands.append((self._window, 1, f"{p}v:cf:{{{ip or device_id}}}:{minute}", 60))
        return commands

    async def _call(self, commands: list[Command]) -> list[Any]:
        if self._task is None or self._task.done():
            raise RuntimeError("Signals.start() was not called, or stop() was")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((commands, future))
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                queued = self._queue.get_nowait()
                if queued is None:
                    self._queue.put_nowait(None)  # stop after this batch
                    break
                batch.append(queued)
            await self._send(batch)

    async def _send(self, batch: list[tuple[list[Command], asyncio.Future[list[Any]]]]) -> None:
        flat = [command for commands, _ in batch for command in commands]
        try:
            try:
                replies = await self._pipeline(flat)
            except NoScriptError:
                await self._load_scripts()
                replies = await self._pipeline(flat)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error (503 via problems)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for commands, future in batch:
            if not future.done():
                future.set_result(replies[at : at + len(commands)])
            at += len(commands)

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.evalsha(*command)
            replies: list[Any] = await pipe.execute()
        return replies
