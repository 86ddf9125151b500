"""Scan signals in Redis: velocity limits per device and IP, and per-code counters and device sketches.

Redis holds hints, never truth: a flush loses recent counters, which only makes limits briefly lenient
and clone signals briefly weaker. First-scan decisions belong to PostgreSQL (see scanlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import hiredis
import msgspec
from redis.asyncio import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from antifraud.errors import Throttled

if TYPE_CHECKING:
    import uuid

    from redis.asyncio import Redis


def _lua(name: str) -> str:
    return resources.files("antifraud.lua").joinpath(name).read_text(encoding="utf-8")


class Limits(msgspec.Struct, frozen=True):
    device_per_minute: int = 30
    ip_per_minute: int = 600
    # A member scanning across many codes (from many devices, with one member token) is a bot too.
    member_per_minute: int = 30
    # Forged codes are logged for intelligence, but one source cannot flood the log.
    counterfeit_logs_per_ip_minute: int = 20
    code_signal_ttl_s: int = 90 * 24 * 3600
    burst_window_s: int = 600


class CodeSignals(msgspec.Struct, frozen=True):
    scans: int
    distinct_devices: int
    # Distinct regions the code was scanned in (0 when this scan's region is unknown: not counted).
    distinct_regions: int = 0
    # From the code's previous located scan to this one (None when either has no location).
    travel_km: int | None = None
    travel_s: int | None = None
    # Scans of the code in the current 10-minute window, and whether it was scanned before activation.
    burst: int = 0
    leaked: bool = False
    # Distinct known members (scans with a member token) the code was scanned by.
    distinct_members: int = 0


class ScanSignals(msgspec.Struct, frozen=True):
    code: CodeSignals | None
    log_counterfeit: bool


# One scan's Redis work: keys, args (in scan_signals.lua's operation format), number of operations.
Operations = tuple[list[str], list[Any], int]

# How many keys and arguments each operation of scan_signals.lua takes (its name included): Redis Cluster
# splits a call by node, so the operations must be told apart.
OPERATION_SHAPES = {"w": (2, 3), "c": (2, 3), "b": (2, 2), "r": (1, 3), "l": (1, 2), "t": (1, 5)}


def _tag(text: str) -> str:
    """Client-chosen text made safe inside a {hash tag}: a brace would end or void the tag, and on Redis
    Cluster an operation's keys would then hash to different slots."""
    if "{" in text or "}" in text:
        return "h" + hashlib.sha256(text.encode()).hexdigest()[:24]
    return text


class Signals:
    """Each scan's Redis work is a few counters, sent in one script call shared with concurrent scans.

    Requests queue their operations; one task sends everything queued as one EVALSHA and hands each
    request its replies (the same coalescing as the scan writer's group commit). A command per scan,
    even pipelined, costs the client several times more CPU, and on the scan path the client's CPU
    is the bottleneck. The script is loaded once; a Redis that lost it answers NOSCRIPT, and it is
    loaded again and the call retried.

    On Redis Cluster the group is split by hash slot (each operation's keys share one hash tag): one
    script call per slot, pipelined to each node, and the replies put back in order.
    """

    def __init__(
        self, redis: Redis | RedisCluster, *, prefix: str, limits: Limits, max_batch: int = 256
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.limits = limits
        self._max_batch = max_batch
        self._script = _lua("scan_signals.lua")
        # Redis names scripts by their SHA-1; no security property is asked of it here.
        self._sha = hashlib.sha1(self._script.encode()).hexdigest()  # noqa: S324
        self._queue: asyncio.Queue[tuple[Operations, asyncio.Future[list[int]]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if isinstance(self._redis, RedisCluster):
            # The slot map, which the per-node split reads without I/O (a cluster that is down is
            # found by the first scan instead: 503 until it answers).
            with contextlib.suppress(RedisError, RedisClusterException):
                await self._redis.initialize()
        self._task = asyncio.create_task(self._run(), name="redis-signals")

    async def stop(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task

    async def repair_count(self, code: tuple[uuid.UUID, int, int], scans: int) -> None:
        """PostgreSQL knows more scans than Redis (a flush or restart): put the truth back."""
        tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
        await self._redis.set(f"{self._prefix}{tag}:n", scans, ex=self.limits.code_signal_ttl_s)

    async def forget_code(self, code: tuple[uuid.UUID, int, int]) -> None:
        """A flag cleared as a false alarm: the code's clone signals start over (its scan count stays)."""
        tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
        await self._redis.delete(*(f"{self._prefix}{tag}:{part}" for part in ("d", "m", "r", "t", "l")))

    async def on_scan(
        self,
        *,
        device_id: str,
        ip: str | None,
        code: tuple[uuid.UUID, int, int] | None,
        region: str | None = None,
        location: tuple[float, float] | None = None,
        member_id: uuid.UUID | None = None,
        leaked_code: tuple[uuid.UUID, int, int] | None = None,
    ) -> ScanSignals:
        """Count the scan against its device, IP and member (Throttled above the limits) and its code."""
        # Two numbers per operation: device window, IP window (with an IP), member window (with a
        # member), then code or counterfeit, then (for a code) its members with a member, its regions
        # with a region, its travel with a location.
        replies = await self._call(
            self._operations(device_id, ip, member_id, code, region, location, leaked_code)
        )
        windows = [("this device", self.limits.device_per_minute)]
        if ip is not None:
            windows.append(("this network", self.limits.ip_per_minute))
        if member_id is not None:
            windows.append(("this member", self.limits.member_per_minute))
        for n, (source, limit) in enumerate(windows):
            count, ttl = replies[2 * n], replies[2 * n + 1]
            if count > limit:
                raise Throttled(f"too many scans from {source}", retry_after=max(1, ttl))
        at = 2 * len(windows)
        if code is not None:
            scans, devices = replies[at], replies[at + 1]
            at += 2
            burst, leaked = replies[at], bool(replies[at + 1])
            regions = members = 0
            travel_km = travel_s = None
            if member_id is not None:
                at += 2
                members = replies[at]
            if region is not None:
                at += 2
                regions = replies[at]
            if location is not None:
                at += 2
                if replies[at] >= 0:
                    travel_km, travel_s = replies[at], replies[at + 1]
            signals = CodeSignals(scans, devices, regions, travel_km, travel_s, burst, leaked, members)
            return ScanSignals(code=signals, log_counterfeit=False)
        within_limit = replies[-2] <= self.limits.counterfeit_logs_per_ip_minute
        return ScanSignals(code=None, log_counterfeit=within_limit)

    def _operations(
        self,
        device_id: str,
        ip: str | None,
        member_id: uuid.UUID | None,
        code: tuple[uuid.UUID, int, int] | None,
        region: str | None,
        location: tuple[float, float] | None,
        leaked_code: tuple[uuid.UUID, int, int] | None,
    ) -> Operations:
        now = time.time()
        minute, elapsed = int(now // 60), int(now % 60)
        p = self._prefix

        def sliding(name: str) -> tuple[list[str], list[Any]]:
            # Over the last 60 s: this minute's counter and the previous one's (one hash slot).
            return [f"{p}v:{name}:{minute}", f"{p}v:{name}:{minute - 1}"], ["w", 60, elapsed]

        names = [f"d:{{{_tag(device_id)}}}"]
        if ip is not None:
            names.append(f"ip:{{{_tag(ip)}}}")
        if member_id is not None:
            names.append(f"m:{{{member_id}}}")
        keys: list[str] = []
        args: list[Any] = []
        for name in names:
            window_keys, window_args = sliding(name)
            keys += window_keys
            args += window_args
        # The windows, then the code's operation or the counterfeit-log window.
        operations = len(names) + 1
        if code is not None:
            tag = f"{{c:{code[0]}:{code[1]}:{code[2]}}}"
            keys += (f"{p}{tag}:n", f"{p}{tag}:d")
            args += ("c", device_id, self.limits.code_signal_ttl_s)
            window = int(time.time() // self.limits.burst_window_s)
            keys += (f"{p}{tag}:b:{window}", f"{p}{tag}:l")
            args += ("b", self.limits.burst_window_s)
            operations += 1
            if member_id is not None:
                # The generic sketch operation, on the code's member sketch.
                keys.append(f"{p}{tag}:m")
                args += ("r", str(member_id), self.limits.code_signal_ttl_s)
                operations += 1
            if region is not None:
                keys.append(f"{p}{tag}:r")
                args += ("r", region, self.limits.code_signal_ttl_s)
                operations += 1
            if location is not None:
                keys.append(f"{p}{tag}:t")
                args += ("t", location[0], location[1], int(time.time()), self.limits.code_signal_ttl_s)
                operations += 1
        else:
            if leaked_code is not None:
                # Before the counterfeit-log window, so that window's reply stays the last one.
                keys.append(f"{p}{{c:{leaked_code[0]}:{leaked_code[1]}:{leaked_code[2]}}}:l")
                args += ("l", self.limits.code_signal_ttl_s)
                operations += 1
            cf_keys, cf_args = sliding(f"cf:{{{_tag(ip or device_id)}}}")
            keys += cf_keys
            args += cf_args
        return keys, args, operations

    async def _call(self, operations: Operations) -> list[int]:
        if self._task is None or self._task.done():
            raise RuntimeError("Signals.start() was not called, or stop() was")
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((operations, future))
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

    async def _evalsha(self, keys: list[str], args: list[Any]) -> list[int]:
        if isinstance(self._redis, RedisCluster):
            return await self._evalsha_by_slot(self._redis, keys, args)
        return await self._evalsha_packed(self._redis, keys, args)

    async def _evalsha_packed(self, client: Redis, keys: list[str], args: list[Any]) -> list[int]:
        """EVALSHA with the command packed by hiredis (C) rather than redis-py's packer.

        redis-py (8.x, asyncio) packs arguments in Python and re-copies its buffer per argument: for
        the hundred-odd arguments of a group of scans that cost ~300 us, hiredis ~17 us. The pooled
        connection and reply parsing stay redis-py's.
        """
        packed = hiredis.pack_command(("EVALSHA", self._sha, len(keys), *keys, *args))
        pool = client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(packed)
            replies: list[int] = await connection.read_response()
        except BaseException:
            # A cancelled or failed call may leave its reply unread: never reuse that connection.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return replies

    async def _evalsha_by_slot(self, cluster: RedisCluster, keys: list[str], args: list[Any]) -> list[int]:
        """One script call per hash slot, sent as one pipeline (a round trip per node).

        A script's declared keys must share a slot on Redis Cluster. A slot whose node lost the script
        (a restart) is loaded and retried alone: the calls that ran must not count twice.
        """
        # slot -> (its keys, its args, the positions of its operations in the whole call)
        shares: dict[int, tuple[list[str], list[Any], list[int]]] = {}
        k = a = operation = 0
        while a < len(args):
            key_count, arg_count = OPERATION_SHAPES[args[a]]
            share = shares.setdefault(cluster.keyslot(keys[k]), ([], [], []))
            share[0].extend(keys[k : k + key_count])
            share[1].extend(args[a : a + arg_count])
            share[2].append(operation)
            k, a, operation = k + key_count, a + arg_count, operation + 1
        groups = list(shares.values())
        answers: list[Any] = [None] * len(groups)
        pending = list(range(len(groups)))
        for attempt in range(2):
            pipe = cluster.pipeline()
            for n in pending:
                # execute_command: redis-py blocks the evalsha method in cluster pipelines, not the command.
                pipe.execute_command("EVALSHA", self._sha, len(groups[n][0]), *groups[n][0], *groups[n][1])
            results = await pipe.execute(raise_on_error=False)
            for n, result in zip(pending, results, strict=True):
                answers[n] = result
            pending = [n for n in pending if isinstance(answers[n], NoScriptError)]
            if not pending or attempt == 1:
                break
            await cluster.script_load(self._script)
        replies = [0] * (2 * operation)
        for (_, _, positions), answer in zip(groups, answers, strict=True):
            if isinstance(answer, Exception):
                raise answer
            for n, position in enumerate(positions):
                replies[2 * position : 2 * position + 2] = answer[2 * n : 2 * n + 2]
        return replies

    async def _send(self, batch: list[tuple[Operations, asyncio.Future[list[int]]]]) -> None:
        keys: list[str] = []
        args: list[Any] = []
        for (op_keys, op_args, _), _ in batch:
            keys += op_keys
            args += op_args
        try:
            try:
                replies = await self._evalsha(keys, args)
            except NoScriptError:
                await self._redis.script_load(self._script)
                replies = await self._evalsha(keys, args)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error (503 via problems)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for (_, _, operations), future in batch:
            width = 2 * operations
            if not future.done():
                future.set_result(replies[at : at + width])
            at += width
