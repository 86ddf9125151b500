"""One screen after a run: throughput, latency per endpoint, errors, verdict mix, rewards vs stock."""

from __future__ import annotations

from loadtests.results import Endpoint, RunResults

AGGREGATED = "Aggregated"


def breaches(
    endpoints: list[Endpoint], *, max_p99_ms: float | None, max_error_rate: float | None
) -> list[str]:
    """The thresholds missed: each endpoint's p99 (and the aggregate's), and the aggregate error rate."""
    missed = []
    total = next((e for e in endpoints if e.name == AGGREGATED), None)
    if max_error_rate is not None and total is not None and total.requests:
        rate = total.failures / total.requests
        if rate > max_error_rate:
            missed.append(f"error rate {rate:.4f} > {max_error_rate}")
    if max_p99_ms is not None:
        missed += [
            f"{e.name}: p99 {e.p99:.0f} ms > {max_p99_ms:.0f} ms"
            for e in endpoints
            if e.requests and e.p99 > max_p99_ms
        ]
    return missed


def render(endpoints: list[Endpoint], results: RunResults, stock: list[str]) -> str:
    total = next((e for e in endpoints if e.name == AGGREGATED), None)
    lines = []
    if total is not None:
        error_rate = total.failures / total.requests if total.requests else 0.0
        lines.append(
            f"throughput {total.per_second:,.1f} req/s   requests {total.requests:,}   "
            f"errors {total.failures:,} ({error_rate:.2%})"
        )
    lines.append("")
    lines.append(
        f"{'endpoint':<26}{'requests':>10}{'errors':>8}{'req/s':>9}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    )
    lines += [
        f"{e.name[:25]:<26}{e.requests:>10,}{e.failures:>8,}{e.per_second:>9.1f}{e.p50:>8.0f}{e.p95:>8.0f}{e.p99:>8.0f}"
        for e in endpoints
    ]
    scans = sum(results.verdicts.values())
    lines.append("")
    mix = ", ".join(
        f"{verdict} {count:,} ({count / scans:.0%})" for verdict, count in sorted(results.verdicts.items())
    )
    lines.append(f"verdicts: {mix or 'none'}")
    for campaign_id, seen in sorted(results.campaigns.items()):
        outcomes = ", ".join(f"{result} {count:,}" for result, count in sorted(seen.results.items()))
        lines.append(
            f"campaign {campaign_id[:8]}: {outcomes}; points {seen.points:,}, prizes won {len(seen.won)}"
        )
    lines += stock
    if results.malformed or results.unanswered:
        lines.append(f"malformed answers {results.malformed}, unanswered scans {results.unanswered}")
    return "\n".join(lines)
