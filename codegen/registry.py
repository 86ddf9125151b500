"""Verification of scanned codes from an in-process copy of products, keys and batches: no I/O per scan."""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from psycopg.rows import class_row

from antifraud.clones import CloneRules
from codegen import codeformat, keys
from codegen.changes import ChangeCursor
from codegen.errors import MalformedCode, UnsealError
from codegen.keyring import mac_aad
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")
logger = logging.getLogger("onecode.registry")


class Outcome(enum.StrEnum):
    GENUINE = "genuine"
    MALFORMED = "malformed"  # not a code of ours at all
    UNKNOWN_PRODUCT = "unknown_product"  # a GTIN or brand code nobody issued under
    UNKNOWN_KEY = "unknown_key"  # a key slot the brand never had
    BAD_TAG = "bad_tag"  # forged or mutated
    NOT_ISSUED = "not_issued"  # a valid tag outside every batch: should not happen without a key leak
    VOIDED = "voided"  # the batch was voided


DEFAULT_CLONE_RULES = CloneRules()

# Outcomes that a stale cache could explain: worth one reload before calling the code counterfeit.
MISS_OUTCOMES = frozenset({Outcome.UNKNOWN_PRODUCT, Outcome.UNKNOWN_KEY, Outcome.NOT_ISSUED})


class CodeFacts(msgspec.Struct, frozen=True):
    """Everything a genuine code tells about its item, for the scan response and the scan log."""

    brand_id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    gtin: str | None
    facts: dict[str, Any]
    batch_id: uuid.UUID
    lot: str | None
    production_date: dt.date | None
    key_id: int
    index: int  # the item's index in its key's space: with brand and key, the code's identity
    position: int  # the item's position within its batch
    # False for an item of an `on_shipment` batch that no shipment activated yet.
    activated: bool = True
    # The shipment that took the item (activating it, or recording where an `on_issue` item went), its
    # distributor and that distributor's sales regions.
    shipment_id: uuid.UUID | None = None
    distributor_id: uuid.UUID | None = None
    territory: tuple[str, ...] = ()


class Verification(msgspec.Struct, frozen=True):
    outcome: Outcome
    facts: CodeFacts | None = None
    # For counterfeit logging: the brand a forged code claimed to belong to, when known.
    claimed_brand_id: uuid.UUID | None = None


class _Product(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    gtin: str | None
    name: str
    facts: dict[str, Any]
    change_seq: int
    short_code: str


class _Key(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    key_id: int
    sealed_mac_key: bytes
    change_seq: int
    short_code: str


class _Batch(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    product_id: uuid.UUID
    key_id: int
    start_index: int
    quantity: int
    lot: str | None
    production_date: dt.date | None
    status: str
    activation: str
    change_seq: int


class _Activation(msgspec.Struct, frozen=True):
    batch_id: uuid.UUID
    start_index: int
    stop_index: int
    shipment_id: uuid.UUID
    distributor_id: uuid.UUID
    change_seq: int


class _DistributorRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    regions: list[str]
    change_seq: int


class _CloneRulesRow(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    devices: int
    members: int
    regions: int
    max_speed_kmh: int | None
    burst: int
    change_seq: int


class _Shipped:
    """The activated ranges of one batch sorted by start, for a bisect per scan (ranges never overlap)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ranges: list[_Activation] = []

    def put(self, activation: _Activation) -> None:
        at = bisect.bisect_left(self.starts, activation.start_index)
        if at < len(self.starts) and self.starts[at] == activation.start_index:
            self.ranges[at] = activation  # loaded again (see codegen.changes): the same range
        else:
            self.starts.insert(at, activation.start_index)
            self.ranges.insert(at, activation)

    def find(self, position: int) -> _Activation | None:
        at = bisect.bisect_right(self.starts, position) - 1
        if at < 0:
            return None
        found = self.ranges[at]
        return found if position < found.stop_index else None


class _KeySpace:
    """The batches of one (brand, key) sorted by start index, for a bisect per scan."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.batches: list[_Batch] = []

    def put(self, batch: _Batch) -> None:
        at = bisect.bisect_left(self.starts, batch.start_index)
        if at < len(self.starts) and self.starts[at] == batch.start_index:
            self.batches[at] = batch  # an update (e.g. voided) of a known batch
        else:
            self.starts.insert(at, batch.start_index)
            self.batches.insert(at, batch)

    def find(self, index: int) -> _Batch | None:
        at = bisect.bisect_right(self.starts, index) - 1
        if at < 0:
            return None
        batch = self.batches[at]
        return batch if index < batch.start_index + batch.quantity else None


class CodeRegistry:
    """Loaded once, then refreshed incrementally (rows whose change_seq moved). Verification is pure."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        self._master_keys = tuple(master_keys)
        self._products_by_gtin: dict[str, _Product] = {}
        self._products: dict[uuid.UUID, _Product] = {}
        self._brands_by_code: dict[str, uuid.UUID] = {}
        self._keys: dict[tuple[uuid.UUID, int], codeformat.CodeKey] = {}
        self._spaces: dict[tuple[uuid.UUID, int], _KeySpace] = {}
        self._shipped: dict[uuid.UUID, _Shipped] = {}
        # Per distributor, not per shipped range: a change of regions reloads one row.
        self._territories: dict[uuid.UUID, tuple[str, ...]] = {}
        self._clone_rules: dict[uuid.UUID, CloneRules] = {}
        self._changes = ChangeCursor()
        self.refreshed_at = 0.0

    async def changed(self, conn: AsyncConnection[Any]) -> bool:
        """True when a change was numbered after the newest loaded, or a skipped one may still commit."""
        if self._changes.waiting:
            return True
        cur = await conn.execute(QUERIES["registry_version"])
        row = await cur.fetchone()
        return row is not None and int(row[0]) > self._changes.newest

    async def refresh(self, conn: AsyncConnection[Any]) -> list[int]:
        """Load what changed since the last refresh (everything, the first time); returns the change
        numbers loaded."""
        since = self._changes.params()
        loaded: list[int] = []
        async with conn.cursor(row_factory=class_row(_Product)) as cur:
            await cur.execute(QUERIES["registry_products"], since)
            for product in await cur.fetchall():
                self._products[product.id] = product
                if product.gtin:
                    self._products_by_gtin[product.gtin] = product
                loaded.append(product.change_seq)
        async with conn.cursor(row_factory=class_row(_Key)) as cur:
            await cur.execute(QUERIES["registry_keys"], since)
            for key in await cur.fetchall():
                try:
                    mac_key = keys.unseal(
                        self._master_keys, key.sealed_mac_key, aad=mac_aad(key.brand_id, key.key_id)
                    )
                except UnsealError:
                    # One unreadable key (wrong master key for it) must not stop every other brand's scans.
                    logger.exception("cannot unseal key %s of brand %s", key.key_id, key.brand_id)
                    continue
                self._keys[key.brand_id, key.key_id] = codeformat.CodeKey(key.key_id, mac_key)
                self._brands_by_code[key.short_code] = key.brand_id
                loaded.append(key.change_seq)
        async with conn.cursor(row_factory=class_row(_Batch)) as cur:
            await cur.execute(QUERIES["registry_batches"], since)
            for batch in await cur.fetchall():
                self._spaces.setdefault((batch.brand_id, batch.key_id), _KeySpace()).put(batch)
                loaded.append(batch.change_seq)
        async with conn.cursor(row_factory=class_row(_Activation)) as cur:
            await cur.execute(QUERIES["registry_activations"], since)
            for activation in await cur.fetchall():
                self._shipped.setdefault(activation.batch_id, _Shipped()).put(activation)
                loaded.append(activation.change_seq)
        # After the activations: a range loaded above committed after its distributor, so this later
        # query sees the distributor too (an unknown territory would judge no diversion).
        async with conn.cursor(row_factory=class_row(_DistributorRow)) as cur:
            await cur.execute(QUERIES["registry_distributors"], since)
            for distributor in await cur.fetchall():
                self._territories[distributor.id] = tuple(distributor.regions)
                loaded.append(distributor.change_seq)
        async with conn.cursor(row_factory=class_row(_CloneRulesRow)) as cur:
            await cur.execute(QUERIES["registry_clone_rules"], since)
            for row in await cur.fetchall():
                self._clone_rules[row.brand_id] = CloneRules(
                    devices=row.devices,
                    members=row.members,
                    regions=row.regions,
                    max_speed_kmh=row.max_speed_kmh,
                    burst=row.burst,
                )
                loaded.append(row.change_seq)
        self._changes.saw(loaded)
        self.refreshed_at = time.monotonic()
        return loaded

    def loaded_elsewhere(self, change_seqs: list[int]) -> None:
        """Changes another cache loaded from the shared sequence (the blocklist's): not missing here."""
        self._changes.saw(change_seqs)

    def clone_rules(self, brand_id: uuid.UUID) -> CloneRules:
        """The brand's clone thresholds (antifraud.clones), the defaults until it sets its own."""
        return self._clone_rules.get(brand_id, DEFAULT_CLONE_RULES)

    def find_serial(self, brand_id: uuid.UUID, serial: str) -> tuple[CodeFacts, str] | None:
        """A brand's code by its serial alone (staff type or read the serial, not the URL): the code's facts
        and path, voided batches included. Tries the brand's short form and each of its GTINs."""
        serial = serial.strip().upper()
        paths = [f"/C/{code}/{serial}" for code, owner in self._brands_by_code.items() if owner == brand_id]
        paths += [
            f"/01/{p.gtin}/21/{serial}" for p in self._products.values() if p.brand_id == brand_id and p.gtin
        ]
        for path in paths:
            found = self.verify(path)
            if found.facts is not None and found.facts.brand_id == brand_id:
                return found.facts, path
        return None

    def serial_of(self, brand_id: uuid.UUID, key_id: int, index: int) -> str | None:
        """A code's serial from its key slot and index (flags and claims keep those, staff read serials)."""
        key = self._keys.get((brand_id, key_id))
        space = self._spaces.get((brand_id, key_id))
        batch = space.find(index) if space else None
        product = self._products.get(batch.product_id) if batch else None
        if key is None or product is None:
            return None
        brand_code = None
        if not product.gtin:
            codes = (code for code, owner in self._brands_by_code.items() if owner == brand_id)
            brand_code = next(codes, None)
        return codeformat.issue_serial(key, gtin=product.gtin, brand_code=brand_code, index=index)

    def verify(self, scanned: str) -> Verification:  # noqa: PLR0911 - one return per outcome reads best
        try:
            parsed = codeformat.parse(scanned)
        except MalformedCode:
            return Verification(Outcome.MALFORMED)
        product: _Product | None = None
        if parsed.gtin is not None:
            product = self._products_by_gtin.get(parsed.gtin)
            brand_id = product.brand_id if product else None
        else:
            brand_id = self._brands_by_code.get(parsed.brand_code or "")
        if brand_id is None:
            return Verification(Outcome.UNKNOWN_PRODUCT)
        key = self._keys.get((brand_id, parsed.key_id))
        if key is None:
            return Verification(Outcome.UNKNOWN_KEY, claimed_brand_id=brand_id)
        index = codeformat.verify(parsed, key)
        if index is None:
            return Verification(Outcome.BAD_TAG, claimed_brand_id=brand_id)
        space = self._spaces.get((brand_id, parsed.key_id))
        batch = space.find(index) if space else None
        if batch is None or (product is not None and batch.product_id != product.id):
            return Verification(Outcome.NOT_ISSUED, claimed_brand_id=brand_id)
        product = product or self._products.get(batch.product_id)
        if product is None:
            return Verification(Outcome.NOT_ISSUED, claimed_brand_id=brand_id)
        position = index - batch.start_index
        # Shipped items of `on_issue` batches too: live either way, but sold within the distributor's
        # territory (an unshipped one is live with no distributor).
        in_batch = self._shipped.get(batch.id)
        shipped = in_batch.find(position) if in_batch else None
        facts = CodeFacts(
            brand_id=brand_id,
            product_id=product.id,
            product_name=product.name,
            gtin=product.gtin,
            facts=product.facts,
            batch_id=batch.id,
            lot=batch.lot,
            production_date=batch.production_date,
            key_id=parsed.key_id,
            index=index,
            position=position,
            activated=batch.activation == "on_issue" or shipped is not None,
            shipment_id=shipped.shipment_id if shipped else None,
            distributor_id=shipped.distributor_id if shipped else None,
            territory=self._territories.get(shipped.distributor_id, ()) if shipped else (),
        )
        if batch.status == "voided":
            return Verification(Outcome.VOIDED, facts=facts, claimed_brand_id=brand_id)
        return Verification(Outcome.GENUINE, facts=facts)
