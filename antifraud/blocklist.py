"""The blocklist: devices, members and IP ranges a brand refuses scans from, until expiry or a lift.

Each worker keeps the active blocks in memory (refreshed with the code registry, which follows the
same change sequence), so the check costs a dictionary lookup per scan. Blocks are made and lifted by
the brand through the API, and every change is audited.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from psycopg.rows import class_row

from codegen.changes import ChangeCursor
from codegen.errors import InvalidInput, ObjectNotFound, StateConflict
from service.db import fetch_all, fetch_one
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("antifraud.sql", "blocks.sql")
REGISTRY_QUERIES = load_queries("codegen.sql", "codegen.sql")

BlockKind = Literal["device", "member", "ip"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: BlockKind
    # A device id, a member id, or an IP address or CIDR range (203.0.113.0/24).
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=200)]
    # None: until lifted.
    expires_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None


class Block(msgspec.Struct, frozen=True):
    id: int
    brand_id: uuid.UUID
    kind: BlockKind
    value: str
    reason: str
    expires_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    lifted_by: str | None
    lifted_at: dt.datetime | None


class _Row(msgspec.Struct, frozen=True):
    id: int
    brand_id: uuid.UUID
    kind: str
    value: str
    expires_at: dt.datetime | None
    lifted_at: dt.datetime | None
    change_seq: int
    member_devices: list[str]


class _BrandBlocks:
    __slots__ = ("devices", "member_devices", "members", "networks")

    def __init__(self) -> None:
        self.devices: dict[str, dt.datetime | None] = {}
        self.members: dict[str, dt.datetime | None] = {}
        # The devices bound to a blocked member when it was blocked (a scan without its cookie).
        self.member_devices: dict[str, dt.datetime | None] = {}
        self.networks: list[tuple[Network, dt.datetime | None]] = []


def _live(expires_at: dt.datetime | None, now: dt.datetime) -> bool:
    return expires_at is None or now < expires_at


def _live_in(blocks: dict[str, dt.datetime | None], key: str, now: dt.datetime) -> bool:
    return key in blocks and _live(blocks[key], now)


class Blocklist:
    """Each worker's copy of the active blocks; `refresh` loads what changed since the last call."""

    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}
        self._by_brand: dict[uuid.UUID, _BrandBlocks] = {}
        self._changes = ChangeCursor()

    async def refresh(self, conn: AsyncConnection[Any]) -> list[int]:
        """Load the blocks made or changed since the last call; returns their change numbers."""
        async with conn.cursor(row_factory=class_row(_Row)) as cur:
            await cur.execute(REGISTRY_QUERIES["registry_blocks"], self._changes.params())
            changed = await cur.fetchall()
        loaded = [row.change_seq for row in changed]
        self._changes.saw(loaded)
        for row in changed:
            self._rows[row.id] = row
        for brand_id in {row.brand_id for row in changed}:
            self._by_brand[brand_id] = self._index(brand_id)
        return loaded

    def loaded_elsewhere(self, change_seqs: list[int]) -> None:
        """Changes the code registry loaded from the shared sequence: not missing here."""
        self._changes.saw(change_seqs)

    def _index(self, brand_id: uuid.UUID) -> _BrandBlocks:
        index = _BrandBlocks()
        for row in self._rows.values():
            if row.brand_id != brand_id or row.lifted_at is not None:
                continue
            if row.kind == "device":
                index.devices[row.value] = row.expires_at
            elif row.kind == "member":
                index.members[row.value] = row.expires_at
                index.member_devices.update(dict.fromkeys(row.member_devices, row.expires_at))
            else:
                index.networks.append((ipaddress.ip_network(row.value, strict=False), row.expires_at))
        return index

    def blocked(
        self,
        brand_id: uuid.UUID,
        *,
        device_id: str,
        member_id: uuid.UUID | None,
        ip: str | None,
        now: dt.datetime,
    ) -> BlockKind | None:
        """What blocks this scan, if anything (a dictionary lookup for brands without blocks)."""
        index = self._by_brand.get(brand_id)
        if index is None:
            return None
        if _live_in(index.devices, device_id, now):
            return "device"
        by_token = member_id is not None and _live_in(index.members, str(member_id), now)
        if by_token or _live_in(index.member_devices, device_id, now):
            return "member"
        if ip is not None and index.networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return None
            if any(address in network and _live(expires, now) for network, expires in index.networks):
                return "ip"
        return None


# Wider ranges hold whole carriers' or countries' phones: a typo (0.0.0.0/0) would refuse every scan.
WIDEST_IPV4_PREFIX = 8
WIDEST_IPV6_PREFIX = 32
_DEVICE_ID = re.compile(r"[\x21-\x7e]{8,128}")  # as a scan's device_id must be


def _normalized(data: BlockIn) -> str:
    if data.kind == "ip":
        try:
            network = ipaddress.ip_network(data.value, strict=False)
        except ValueError:
            raise InvalidInput("value", "not an IP address or CIDR range") from None
        widest = WIDEST_IPV4_PREFIX if network.version == 4 else WIDEST_IPV6_PREFIX  # noqa: PLR2004
        if network.prefixlen < widest:
            raise InvalidInput("value", f"a range wider than /{widest} would block far more than a bot farm")
        return str(network)
    if data.kind == "member":
        try:
            return str(uuid.UUID(data.value))
        except ValueError:
            raise InvalidInput("value", "not a member id") from None
    if not _DEVICE_ID.fullmatch(data.value):
        raise InvalidInput("value", "not a device id (8 to 128 printable ASCII characters, as scans send)")
    return data.value


async def create(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, data: BlockIn, actor: str, now: dt.datetime
) -> Block:
    if data.expires_at is not None and data.expires_at <= now:
        raise InvalidInput("expires_at", "the block would have expired already")
    value = _normalized(data)
    if data.kind == "member":
        found = await conn.execute(QUERIES["member_of_brand"], {"brand_id": brand_id, "member_id": value})
        if await found.fetchone() is None:
            raise InvalidInput("value", "no member of this brand has this id")
    cur = await conn.execute(
        QUERIES["active_block"], {"brand_id": brand_id, "kind": data.kind, "value": value, "now": now}
    )
    if (existing := await cur.fetchone()) is not None:
        raise StateConflict(f"already blocked (block {existing[0]}): lift it to change it", field="value")
    params = {
        "brand_id": brand_id,
        "kind": data.kind,
        "value": value,
        "reason": data.reason,
        "expires_at": data.expires_at,
        "actor": actor,
    }
    block = await fetch_one(conn, QUERIES["insert_block"], params, Block)
    assert block is not None  # INSERT ... RETURNING always returns the row
    return block


async def list_blocks(
    conn: AsyncConnection[Any],
    brand_id: uuid.UUID,
    *,
    active_only: bool,
    after: int | None,
    limit: int,
    now: dt.datetime,
) -> list[Block]:
    params = {"brand_id": brand_id, "active_only": active_only, "after": after, "limit": limit, "now": now}
    return await fetch_all(conn, QUERIES["list_blocks"], params, Block)


async def lift(
    conn: AsyncConnection[Any], *, brand_id: uuid.UUID, block_id: int, actor: str, now: dt.datetime
) -> Block:
    """End a block now (lifting twice keeps the first lift)."""
    params = {"brand_id": brand_id, "block_id": block_id, "actor": actor, "now": now}
    block = await fetch_one(conn, QUERIES["lift_block"], params, Block)
    if block is None:
        raise ObjectNotFound("block", block_id)
    return block
