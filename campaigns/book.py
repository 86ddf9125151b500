"""Each worker's copy of the live campaigns: which campaigns may reward a scan, decided without I/O.

The book reloads the brand's scheduled and active campaigns every second (and at once after an
admin change in this process). For a scan it returns one `RewardItem` per campaign that may reward
it, in priority order: a non-stackable campaign rewards a scan alone; stackable ones reward it
together. A lucky draw's outcome is computed here from its sealed seed (the same `draws.pick` that
`verify-draws` recomputes). Everything a stale copy could get wrong (status, schedule, first scan,
caps, stock, budget) is checked again by `award_scan_rewards` in PostgreSQL, under the campaign's lock.

Regions: a campaign that names regions rewards scans whose region (from the phone's location, or the
operator's IP database: see antifraud.regions) lies in one of them; a scan of unknown region does not
qualify. Member tiers are the database's to check, like "new member": a campaign that names tiers
rewards members whose tier (as the member statistics last computed it, at most a minute old) is one of
them, and a points campaign pays each member's tier multiplier (the budget pays for the extra points).
Like the other database-side rules, a non-stackable campaign the database then refuses still kept the
scan from the lower-priority campaigns the book passed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from antifraud import regions
from campaigns import campaigns, coupons, draws, ledger
from campaigns.campaigns import Eligibility, PointsReward
from service.db import fetch_all
from service.queries import load_queries

if TYPE_CHECKING:
    from codegen.registry import CodeFacts

logger = logging.getLogger("onecode.campaigns")
QUERIES = load_queries("campaigns.sql", "book.sql")
POLL_S = 1.0


class RewardItem(msgspec.Struct, frozen=True, kw_only=True):
    """One campaign's claim on one scan, as `award_scan_rewards` reads it (plus `seq`, set by the writer)."""

    campaign_id: uuid.UUID
    kind: str
    first_only: bool
    members: str
    # Points campaigns: the points and what they cost; draws: the prize the seed picked (None: no prize).
    points: int | None
    cost_cents: int
    drawn_prize_id: uuid.UUID | None
    # The campaign's local day: daily budgets and caps count in the campaign's time zone.
    day: dt.date
    # When points earned by this scan expire (ledger.default_expiry, in the campaign's time zone).
    expires_at: dt.datetime
    # Coupon campaigns, and draws that picked a coupon prize: the coupon to issue if the scan wins it.
    coupon_template_id: uuid.UUID | None = None
    coupon_code_hash: str | None = None
    coupon_code_sealed: str | None = None
    # Tier names the member must hold, segments it must be in (None: any); decided in the database,
    # which knows the member.
    tiers: list[str] | None = None
    segment_ids: list[uuid.UUID] | None = None
    # Points campaigns: the database multiplies points by the member's tier, and the cost with them.
    cents_per_point: int = 0
    # Draws: the outcome again for each draw weight bonus of the brand's tiers; the database takes the
    # one of the member's tier (none for a tier without a bonus).
    bonus_draws: list[BonusDraw] | None = None


class BonusDraw(msgspec.Struct, frozen=True, kw_only=True):
    bonus_pct: int
    drawn_prize_id: uuid.UUID | None
    coupon_template_id: uuid.UUID | None = None
    coupon_code_hash: str | None = None
    coupon_code_sealed: str | None = None


class Award(msgspec.Struct, frozen=True):
    """What one campaign gave one scan (`award_scan_rewards`): awarded, won, no_prize, sold_out, ..."""

    campaign_id: uuid.UUID
    result: str
    points: int | None
    prize_id: uuid.UUID | None
    slot: int | None
    # The coupon the scan got (a coupon campaign's, or a coupon prize's), sealed; None otherwise.
    coupon_code_sealed: str | None = None


class PrizeOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    kind: str
    # Physical prizes wait for the winner's shipping address (POST /v1/members/me/prizes/...:claim).
    needs_claim: bool


class CouponOut(msgspec.Struct, frozen=True):
    # Shown at the till; the member's wallet (GET /v1/members/me/rewards) lists it with its terms.
    code: str
    name: str


class RewardLine(msgspec.Struct, frozen=True):
    campaign_id: uuid.UUID
    campaign_name: str
    kind: str
    # points and coupon campaigns: awarded, capped, over_budget;
    # lucky draws: won, no_prize, sold_out, capped, over_budget.
    result: str
    points: int | None
    prize: PrizeOut | None
    coupon: CouponOut | None = None


class ScanReward(msgspec.Struct, frozen=True):
    """The `reward` of a scan answer: the points it earned in all, and each campaign's outcome."""

    points: int
    outcomes: list[RewardLine]


class _LiveRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    brand_id: uuid.UUID
    name: str
    kind: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    priority: int
    stackable: bool
    eligibility: Eligibility
    points_reward: PointsReward | None
    no_prize_weight: int
    seed_sealed: bytes | None
    coupon_template_id: uuid.UUID | None
    coupon_name: str | None
    coupon_cost_cents: int | None
    budget_left: int
    daily_budget_cents: int | None
    recent_days: dict[dt.date, int]
    prizes: list[draws.Prize]
    tier_bonuses: list[int]


class LiveCampaign:
    """A campaign's rules compiled for fast checks (sets, a zone object, the unsealed seed)."""

    __slots__ = (
        "batch_ids",
        "brand_id",
        "coupon_cost_cents",
        "coupon_name",
        "coupon_template_id",
        "daily_left",
        "ends_at",
        "first_only",
        "id",
        "kind",
        "members",
        "name",
        "no_prize_weight",
        "points_reward",
        "priority",
        "prizes",
        "product_ids",
        "regions",
        "seed",
        "segment_ids",
        "sold_out",
        "stackable",
        "starts_at",
        "tier_bonuses",
        "tiers",
        "time_windows",
        "zone",
    )

    def __init__(self, row: _LiveRow, seed: bytes | None) -> None:
        rules = row.eligibility
        self.id = row.id
        self.brand_id = row.brand_id
        self.name = row.name
        self.kind = row.kind
        self.starts_at = row.starts_at
        self.ends_at = row.ends_at
        self.zone = zoneinfo.ZoneInfo(row.time_zone)
        self.priority = row.priority
        self.stackable = row.stackable
        self.product_ids = frozenset(rules.product_ids)
        self.batch_ids = frozenset(rules.batch_ids)
        self.first_only = rules.first_scan_only
        self.members = rules.members
        self.time_windows = [(w.start, w.end) for w in rules.time_windows]
        self.regions = tuple(rules.regions)
        self.tiers = list(rules.member_tiers) or None
        self.segment_ids = list(rules.segment_ids) or None
        self.tier_bonuses = row.tier_bonuses
        self.points_reward = row.points_reward
        self.no_prize_weight = row.no_prize_weight
        self.prizes = row.prizes
        self.seed = seed
        self.coupon_template_id = row.coupon_template_id
        self.coupon_name = row.coupon_name or ""
        self.coupon_cost_cents = row.coupon_cost_cents or 0
        # The "sold out" hint, as of the last reload (a second old at most): nothing left to give in all,
        # or on a day. PostgreSQL still decides every award; the hint only spares the futile ones.
        cheapest = self._cheapest_award()
        self.sold_out = cheapest is None or (cheapest > 0 and row.budget_left < cheapest)
        self.daily_left: dict[dt.date, bool] = {}
        if row.daily_budget_cents is not None and cheapest:
            self.daily_left = {
                day: row.daily_budget_cents - spent >= cheapest for day, spent in row.recent_days.items()
            }

    def _cheapest_award(self) -> int | None:
        """The least one reward can cost the budget; None when nothing is left to give (prizes gone)."""
        if self.kind == "coupon":
            return self.coupon_cost_cents
        if self.kind == "points":
            reward = self.points_reward
            if reward is None:
                return None
            amounts = [a for a in (reward.points, *reward.per_product.values()) if a is not None]
            return min(amounts) * reward.cents_per_point if amounts else None
        in_stock = [p.cost_cents for p in self.prizes if p.weight > 0 and p.stock > p.awarded]
        return min(in_stock) if in_stock else None

    def exhausted(self, day: dt.date) -> bool:
        return self.sold_out or not self.daily_left.get(day, True)

    def matches(self, facts: CodeFacts, local: dt.datetime, now: dt.datetime, region: str | None) -> bool:
        if not self.starts_at <= now < self.ends_at:
            return False
        if self.regions and (region is None or not regions.within(region, self.regions)):
            return False
        if self.product_ids and facts.product_id not in self.product_ids:
            return False
        if self.batch_ids and facts.batch_id not in self.batch_ids:
            return False
        if self.time_windows:
            clock = local.time()
            return any(start <= clock < end for start, end in self.time_windows)
        return True

    def item(
        self, facts: CodeFacts, scan_id: uuid.UUID, local: dt.datetime, master_key: bytes
    ) -> RewardItem | None:
        points: int | None = None
        cost = 0
        cents_per_point = 0
        drawn: uuid.UUID | None = None
        template: uuid.UUID | None = None
        bonus_draws: list[BonusDraw] | None = None
        if self.kind == "coupon":
            template = self.coupon_template_id
            cost = self.coupon_cost_cents
        elif self.kind == "points":
            reward = self.points_reward
            if reward is None:
                return None
            points = reward.per_product.get(facts.product_id, reward.points)
            if points is None:
                return None
            cents_per_point = reward.cents_per_point
            cost = points * cents_per_point
        else:
            if self.seed is None:
                return None
            prize = draws.pick(self.seed, scan_id, self.prizes, self.no_prize_weight)
            drawn = None if prize is None else prize.id
            template = None if prize is None else prize.coupon_template_id
            bonus_draws = [
                self._bonus_draw(scan_id, bonus, master_key) for bonus in self.tier_bonuses
            ] or None
        # The code is made (and sealed) before the database decides; a refused reward just drops it.
        code = None if template is None else coupons.issue_code(master_key, self.brand_id)
        return RewardItem(
            campaign_id=self.id,
            kind=self.kind,
            first_only=self.first_only,
            members=self.members,
            points=points,
            cost_cents=cost,
            drawn_prize_id=drawn,
            day=local.date(),
            expires_at=ledger.default_expiry(local),
            coupon_template_id=template,
            coupon_code_hash=None if code is None else code.hash_hex,
            coupon_code_sealed=None if code is None else code.sealed_hex,
            tiers=self.tiers,
            segment_ids=self.segment_ids,
            cents_per_point=cents_per_point,
            bonus_draws=bonus_draws,
        )

    def _bonus_draw(self, scan_id: uuid.UUID, bonus_pct: int, master_key: bytes) -> BonusDraw:
        assert self.seed is not None
        prize = draws.pick(self.seed, scan_id, self.prizes, self.no_prize_weight, bonus_pct)
        template = None if prize is None else prize.coupon_template_id
        code = None if template is None else coupons.issue_code(master_key, self.brand_id)
        return BonusDraw(
            bonus_pct=bonus_pct,
            drawn_prize_id=None if prize is None else prize.id,
            coupon_template_id=template,
            coupon_code_hash=None if code is None else code.hash_hex,
            coupon_code_sealed=None if code is None else code.sealed_hex,
        )


class CampaignBook:
    def __init__(self, pool: AsyncConnectionPool, master_keys: Sequence[bytes]) -> None:
        self._pool = pool
        self._master_keys = master_keys
        self._by_brand: dict[uuid.UUID, list[LiveCampaign]] = {}
        # Seeds are unsealed once per campaign: AES-GCM is cheap, but not free on every reload.
        self._seeds: dict[uuid.UUID, bytes] = {}
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        self.loaded = False

    def reward_items(
        self, facts: CodeFacts, scan_id: uuid.UUID, now: dt.datetime, region: str | None = None
    ) -> list[RewardItem]:
        """The campaigns that may reward this scan, highest priority first, honouring stacking."""
        live = self._by_brand.get(facts.brand_id)
        if not live:
            return []
        items: list[RewardItem] = []
        exclusive = False
        for campaign in live:
            local = now.astimezone(campaign.zone)
            # A campaign with nothing left to give yields the scan to the next one.
            if not campaign.matches(facts, local, now, region) or campaign.exhausted(local.date()):
                continue
            if items and (exclusive or not campaign.stackable):
                continue
            # New coupons are sealed under the current master key (settings.all_master_keys lists it first).
            item = campaign.item(facts, scan_id, local, self._master_keys[0])
            if item is None:
                continue
            items.append(item)
            exclusive = not campaign.stackable
            if exclusive:
                break
        return items

    def describe(self, brand_id: uuid.UUID, awards: Sequence[Award]) -> ScanReward | None:
        """The scan answer's `reward`; None when no campaign considered the scan. The awards say which
        coupon the database issued (the member's tier may have picked it)."""
        if not awards:
            return None
        live = {c.id: c for c in self._by_brand.get(brand_id, ())}
        lines = []
        for award in awards:
            campaign = live.get(award.campaign_id)
            prize = None
            coupon_name = campaign.coupon_name if campaign else ""
            if campaign is not None and award.prize_id is not None:
                found = next((p for p in campaign.prizes if p.id == award.prize_id), None)
                if found is not None:
                    prize = PrizeOut(found.id, found.name, found.kind, needs_claim=found.kind == "physical")
                    coupon_name = found.name
            coupon = None
            sealed = award.coupon_code_sealed
            if sealed and award.result in {"awarded", "won"}:
                code = coupons.reveal_code(self._master_keys, brand_id, bytes.fromhex(sealed))
                coupon = CouponOut(code=code, name=coupon_name)
            lines.append(
                RewardLine(
                    campaign_id=award.campaign_id,
                    campaign_name=campaign.name if campaign else "",
                    kind=campaign.kind if campaign else "",
                    result=award.result,
                    points=award.points,
                    prize=prize,
                    coupon=coupon,
                )
            )
        earned = sum(a.points or 0 for a in awards if a.result in {"awarded", "won"})
        return ScanReward(points=earned, outcomes=lines)

    async def ensure_loaded(self) -> None:
        """Before the first load no scan can be judged: a scan must not miss its reward at start-up."""
        if not self.loaded:
            async with self._lock:
                if not self.loaded:  # a concurrent caller may have loaded it while this one waited
                    await self._load()

    async def reload(self) -> None:
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        async with self._pool.connection() as conn:
            rows = await fetch_all(conn, QUERIES["live_campaigns"], {}, _LiveRow)
        by_brand: dict[uuid.UUID, list[LiveCampaign]] = {}
        for row in rows:
            by_brand.setdefault(row.brand_id, []).append(LiveCampaign(row, self._seed(row)))
        self._by_brand = by_brand
        self.loaded = True

    def _seed(self, row: _LiveRow) -> bytes | None:
        if row.kind != "lucky_draw" or row.seed_sealed is None:
            return None
        seed = self._seeds.get(row.id)
        if seed is None:
            seed = draws.unseal_seed(row.brand_id, row.seed_sealed, self._master_keys)
            self._seeds[row.id] = seed
        return seed

    async def follow(self) -> None:
        """Take due schedule steps and reload, every second until `stop()`; a failure keeps the last copy."""
        while not self._stopping.is_set():
            try:
                async with self._pool.connection() as conn:
                    await campaigns.advance_schedules(
                        conn, master_keys=self._master_keys, now=dt.datetime.now(dt.UTC)
                    )
                await self.reload()
            except (psycopg.Error, PoolTimeout) as exc:
                logger.warning("campaign reload failed: %s", exc)
            except Exception:  # a bug must not stop every later reload
                logger.exception("campaign reload failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), POLL_S)

    def stop(self) -> None:
        self._stopping.set()
