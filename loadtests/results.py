"""What the load generator was told: verdicts, rewards and the scans whose answers never arrived.

Each locust process counts its own answers; workers hand theirs to the master with every stats report
(`drain`, `merge`), and the master writes the whole run to a JSON file that the summary and the
reconciliation read (`loadtests.reconcile`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec


class CampaignSeen(msgspec.Struct):
    """One campaign's outcomes in the answers of this run."""

    points: int = 0
    # The most points a single award gave (what an unanswered scan could have earned unseen).
    most_points: int = 0
    # Scan ids of the draws this run was told it won.
    won: list[str] = msgspec.field(default_factory=list)
    results: dict[str, int] = msgspec.field(default_factory=dict)


class Endpoint(msgspec.Struct, frozen=True):
    """One request name's figures at the end of the run (locust's final table); "Aggregated" for all."""

    name: str
    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float


class RunResults(msgspec.Struct):
    # Written by the master when locust quits, from the same figures as locust's own final table.
    endpoints: list[Endpoint] = msgspec.field(default_factory=list)
    verdicts: dict[str, int] = msgspec.field(default_factory=dict)
    campaigns: dict[str, CampaignSeen] = msgspec.field(default_factory=dict)
    # Scans that got no usable answer (a timeout, a dropped connection, a 5xx): they may have been
    # rewarded without the generator knowing, so the reconciliation reports them apart.
    unanswered: int = 0
    # Scans in flight when the run stopped: locust ends each user at once, so their answers are never
    # read, yet the deployment may have committed them, rewards and all. Not errors; reported apart.
    cut_off: int = 0
    # Answers that broke the contract (no verdict, a malformed reward): each is also a locust failure.
    malformed: int = 0

    @property
    def unseen(self) -> int:
        """Scans that may have been rewarded without the generator hearing of it."""
        return self.unanswered + self.cut_off

    def record_answer(self, body: dict[str, Any]) -> bool:
        """Count one scan answer; False when its shape is wrong (no verdict, malformed reward)."""
        verdict = body.get("verdict")
        if not isinstance(verdict, str):
            self.malformed += 1
            return False
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        reward = body.get("reward")
        if reward is None:
            return True
        if not _reward_shape_ok(reward):
            self.malformed += 1
            return False
        for line in reward["outcomes"]:
            seen = self.campaigns.setdefault(str(line["campaign_id"]), CampaignSeen())
            seen.results[line["result"]] = seen.results.get(line["result"], 0) + 1
            if line["result"] == "awarded" and line.get("points"):
                seen.points += int(line["points"])
                seen.most_points = max(seen.most_points, int(line["points"]))
            if line["result"] == "won":
                seen.won.append(str(body["scan_id"]))
        return True

    def drain(self) -> dict[str, Any]:
        """Everything counted since the last drain, as plain data, and start counting afresh."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        self.verdicts, self.campaigns, self.unanswered, self.cut_off, self.malformed = {}, {}, 0, 0, 0
        return data

    def merge(self, data: dict[str, Any]) -> None:
        other = msgspec.convert(data, RunResults)
        self.verdicts = dict(Counter(self.verdicts) + Counter(other.verdicts))
        for campaign_id, seen in other.campaigns.items():
            mine = self.campaigns.setdefault(campaign_id, CampaignSeen())
            mine.points += seen.points
            mine.most_points = max(mine.most_points, seen.most_points)
            mine.won += seen.won
            mine.results = dict(Counter(mine.results) + Counter(seen.results))
        self.unanswered += other.unanswered
        self.cut_off += other.cut_off
        self.malformed += other.malformed

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msgspec.json.format(msgspec.json.encode(self)))

    @classmethod
    def read(cls, path: Path) -> RunResults:
        return msgspec.json.decode(path.read_bytes(), type=cls)


def _reward_shape_ok(reward: Any) -> bool:
    if not isinstance(reward, dict) or not isinstance(reward.get("points"), int):
        return False
    outcomes = reward.get("outcomes")
    if not isinstance(outcomes, list) or not outcomes:
        return False
    return all(
        isinstance(line, dict)
        and isinstance(line.get("campaign_id"), str)
        and isinstance(line.get("result"), str)
        for line in outcomes
    )
