"""Triggers decide whether a cycle trains. Pure functions: inputs in, a recorded decision out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TriggerDecision:
    name: str
    fired: bool
    value: float
    threshold: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def volume_trigger(new_examples: int, threshold: int) -> TriggerDecision:
    """Train when enough new usable feedback arrived since the last dataset version."""
    fired = new_examples >= threshold
    verb = ">=" if fired else "<"
    return TriggerDecision(
        "volume",
        fired,
        new_examples,
        threshold,
        f"{new_examples} new usable feedback events {verb} {threshold}",
    )


def any_fired(decisions: list[TriggerDecision]) -> bool:
    return any(d.fired for d in decisions)
