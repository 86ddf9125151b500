"""What consumers do in a run, and in what proportions (`--mix`): kept apart from locust, which
monkey-patches the process that imports it."""

from __future__ import annotations

# A promotion's proportions: most scans are first scans of a bought item, a quarter are repeats.
DEFAULT_MIX = "first=60,repeat=25,forged=5,unactivated=5,enrol=5"
MIX_ACTIONS = ("first", "repeat", "forged", "unactivated", "enrol")


def parse_mix(text: str) -> tuple[list[str], list[int]]:
    """'first=60,repeat=25' -> (["first", "repeat"], [60, 25]); unknown actions are refused."""
    actions, weights = [], []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in MIX_ACTIONS or not weight.strip().isdigit():
            raise ValueError(
                f"--mix: {part!r} is not action=weight with an action of {', '.join(MIX_ACTIONS)}"
            )
        actions.append(name)
        weights.append(int(weight))
    if sum(weights) <= 0:
        raise ValueError("--mix: the weights add up to nothing")
    return actions, weights
