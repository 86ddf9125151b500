"""After a run: what the load generator was told against what the deployment's database holds.

Through the public API only (the kit may run far from the database): each seeded campaign's statistics
before and after the run, and its winners list. For every campaign:
- points the generator was told it earned == points given during the run (stats delta);
- draws it was told it won == prizes won during the run, and the same scans (winners list);
- no prize's stock went below zero (awarded <= stock) and spend never passed the budget.
A scan whose answer never arrived (an error, or in flight when the run stopped) may have been rewarded
anyway: such differences are reported as unconfirmed, not as faults, when there were such scans to
explain them.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import io
import json
from dataclasses import dataclass, field
from typing import Any

from loadtests.results import CampaignSeen, RunResults
from loadtests.seeding import Api


@dataclass(frozen=True)
class Snapshot:
    """Each campaign's totals at one moment."""

    taken_at: dt.datetime
    points_given: dict[str, int]
    prizes_won: dict[str, int]


@dataclass
class Reconciliation:
    lines: list[str] = field(default_factory=list)
    # Rewards the generator was told of that the database does not hold, or the reverse.
    differences: int = 0
    # Differences the unanswered scans could explain (a reward given, its answer lost in transit).
    unconfirmed: int = 0

    @property
    def ok(self) -> bool:
        return self.differences == 0


def snapshot(api: Api, campaign_ids: tuple[str, ...]) -> Snapshot:
    """Each campaign's totals, stamped with the server's clock (its `Date`), which `won_at` also uses."""
    points, prizes = {}, {}
    taken_at = dt.datetime.now(dt.UTC)
    for n, campaign_id in enumerate(campaign_ids):
        body, headers = api.call_with_headers("GET", f"/v1/campaigns/{campaign_id}/stats")
        if n == 0 and headers.get("Date"):
            # Whole seconds: a win in the same second as the snapshot still counts as this run's.
            taken_at = email.utils.parsedate_to_datetime(headers["Date"]) - dt.timedelta(seconds=1)
        totals = json.loads(body)["totals"]
        points[campaign_id] = int(totals["points_given"])
        prizes[campaign_id] = int(totals["prizes_won"])
    return Snapshot(taken_at, points, prizes)


def reconcile(api: Api, before: Snapshot, results: RunResults) -> Reconciliation:
    found = Reconciliation()
    after = snapshot(api, tuple(before.points_given))
    for campaign_id in before.points_given:
        seen = results.campaigns.get(campaign_id, CampaignSeen())
        stats = api.json("GET", f"/v1/campaigns/{campaign_id}/stats")
        name = f"campaign {campaign_id[:8]}"
        given = after.points_given[campaign_id] - before.points_given[campaign_id]
        # What one unanswered scan could have earned unseen: the most points one award gave, one prize.
        awards = seen.results.get("awarded", 0)
        most_points = -(-seen.points // awards) if awards else 0
        _compare(found, f"{name} points", told=seen.points, held=given, unseen=results.unseen * most_points)
        won = after.prizes_won[campaign_id] - before.prizes_won[campaign_id]
        _compare(found, f"{name} prizes won", told=len(seen.won), held=won, unseen=results.unseen)
        if seen.won or won:
            _compare_winners(found, results, api, name, campaign_id, seen, before.taken_at)
        for prize in stats["prizes"]:
            left = int(prize["stock"]) - int(prize["awarded"])
            found.lines.append(
                f"{name} prize {prize['name']!r}: {prize['awarded']} of {prize['stock']} given"
            )
            if left < 0:
                found.differences += 1
                found.lines.append(f"  FAULT: stock below zero ({left})")
        spend = stats["spend"]
        if int(spend["spent_cents"]) > int(spend["budget_cents"]):
            found.differences += 1
            found.lines.append(f"{name}: FAULT spend {spend['spent_cents']} > budget {spend['budget_cents']}")
    found.lines.append(
        f"reconciliation: {found.differences} difference(s), {found.unconfirmed} unconfirmed, "
        f"{results.unanswered} scan(s) unanswered, {results.cut_off} cut off by the stop"
    )
    return found


def _compare(found: Reconciliation, what: str, *, told: int, held: int, unseen: int) -> None:
    """`unseen`: the most the unanswered scans could have earned without the generator hearing of it."""
    found.lines.append(f"{what}: told {told}, database {held}")
    if told == held:
        return
    if told < held <= told + unseen:
        found.unconfirmed += held - told
        found.lines.append(f"  unconfirmed: {held - told} (within what unanswered scans could explain)")
    else:
        found.differences += abs(held - told)
        found.lines.append(f"  DIFFERENCE: {'missing' if held < told else 'extra'} {abs(held - told)}")


def _compare_winners(
    found: Reconciliation,
    results: RunResults,
    api: Api,
    name: str,
    campaign_id: str,
    seen: CampaignSeen,
    since: dt.datetime,
) -> None:
    held = {
        row["scan_id"]
        for row in _winners(api, campaign_id)
        if dt.datetime.fromisoformat(row["won_at"]) >= since
    }
    told = set(seen.won)
    lost, extra = told - held, held - told
    if lost:
        found.differences += len(lost)
        found.lines.append(f"  DIFFERENCE: {name}: {len(lost)} win(s) told but not in the winners list")
    if len(extra) > results.unseen:
        found.differences += len(extra) - results.unseen
        found.lines.append(f"  DIFFERENCE: {name}: {len(extra)} winner(s) never told")


def _winners(api: Api, campaign_id: str) -> list[dict[str, Any]]:
    """Every row of the winners list, following its `Link: rel="next"` files."""
    rows: list[dict[str, Any]] = []
    path: str | None = f"/v1/campaigns/{campaign_id}/winners.csv?limit=50000"
    while path is not None:
        body, headers = api.call_with_headers("GET", path)
        rows += list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
        path = _next_link(headers.get("Link"))
    return rows


def _next_link(link: str | None) -> str | None:
    if not link or 'rel="next"' not in link:
        return None
    return link.split(";")[0].strip().removeprefix("<").removesuffix(">")
