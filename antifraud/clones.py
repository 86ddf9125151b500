"""Clone detection: one genuine code copied onto many fakes shows in its scan history.

Signals per code (kept in Redis by antifraud.signals, a rebuildable hint): distinct devices, distinct
known members, distinct regions, the travel from its previous located scan, and a burst of scans within
10 minutes. Each signal is scored against the brand's threshold as a percentage; the code's risk score
is the highest of them, plus 50 when the code was scanned before it was activated (a leaked print file:
another signal at half its threshold then suffices). A score of 100 or more makes the scan
`suspect_clone` (no reward; the code is flagged for review with its case and pallet).

Defaults (per brand, `PUT /v1/antifraud/clone-rules`):
- devices: 10 distinct devices (a family shares a bottle; a shop's shelf is not scanned by 10 phones);
- members: 5 distinct known members (scans carrying a member token: people with accounts, who do not
  share one bottle between five households; a new device's first scan has no member yet);
- regions: 3 distinct provinces (an item does not tour the country after sale);
- travel: faster than 800 km/h between two located scans at least 100 km apart (faster than a plane);
  `max_speed_kmh: null` turns this rule off;
- burst: 20 scans of the one code within a 10-minute window (one bottle cap is not scanned 20 times).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import msgspec

if TYPE_CHECKING:
    from antifraud.signals import CodeSignals

SUSPECT_SCORE = 100
# Added to the score of a code scanned before its activation.
LEAK_SCORE = 50
# Two scans closer than this are one place (location is rounded, phones drift): never "travel".
MIN_TRAVEL_KM = 100


class CloneRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    devices: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 10
    members: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 5
    regions: Annotated[int, msgspec.Meta(ge=2, le=1_000)] = 3
    # None turns the travel rule off (for brands whose buyers share locations too coarse for it).
    max_speed_kmh: Annotated[int, msgspec.Meta(ge=50, le=100_000)] | None = 800
    # Scans of one code within a 10-minute window.
    burst: Annotated[int, msgspec.Meta(ge=2, le=100_000)] = 20


class BrandCloneRules(msgspec.Struct, frozen=True):
    brand_id: uuid.UUID
    rules: CloneRules


class Risk(msgspec.Struct, frozen=True):
    score: int
    # The signals at or past their threshold: devices, regions, travel.
    reasons: list[str]

    @property
    def suspect(self) -> bool:
        return self.score >= SUSPECT_SCORE


NO_RISK = Risk(0, [])


def assess(signals: CodeSignals | None, rules: CloneRules) -> Risk:
    """The code's risk score after this scan (0 without code signals, e.g. a code not yet activated)."""
    if signals is None:
        return NO_RISK
    scores = {
        "devices": 100 * signals.distinct_devices // rules.devices,
        "members": 100 * signals.distinct_members // rules.members,
        "regions": 100 * signals.distinct_regions // rules.regions,
        "travel": _travel_score(signals, rules),
        "burst": 100 * signals.burst // rules.burst,
    }
    bonus = LEAK_SCORE if signals.leaked else 0
    score = max(scores.values()) + bonus
    reasons = [name for name, value in scores.items() if value + bonus >= SUSPECT_SCORE]
    if bonus and reasons:
        reasons.append("leaked")
    return Risk(score, reasons)


def _travel_score(signals: CodeSignals, rules: CloneRules) -> int:
    if (
        rules.max_speed_kmh is None
        or signals.travel_km is None
        or signals.travel_s is None
        or signals.travel_km < MIN_TRAVEL_KM
    ):
        return 0
    # The speed against the limit, in percent: 100 * (km / hours) / max, in integers.
    return 100 * signals.travel_km * 3600 // (max(signals.travel_s, 1) * rules.max_speed_kmh)
