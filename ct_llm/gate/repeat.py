"""Does the gate give the same answer when the same candidate is evaluated again?

`ct-llm eval --candidate V --repeat N` evaluates one candidate N times (fresh answers from the
servers each time) and asks the gate each time. The decision is reproducible when every run
gives the same verdict for the same reasons: the same rules failing. Pure: takes the gate
previews (Decision.to_dict()) and compares them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RepeatSummary:
    runs: int
    verdicts: list[str]
    """"approve" or "reject", per run."""
    failed_rules: list[list[str]]
    """The rules that failed, per run (sorted)."""
    identical: bool
    """Every run gave the same verdict with the same failing rules."""
    majority: str
    """The most common verdict and how many runs gave it, e.g. "approve (5 of 5)"."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_repeats(previews: Sequence[Mapping[str, Any]]) -> RepeatSummary:
    if not previews:
        raise ValueError("no evaluation to compare")
    verdicts = ["approve" if p.get("approved") else "reject" for p in previews]
    failed = [
        sorted(str(r.get("rule")) for r in p.get("reasons", []) if not r.get("passed", False))
        for p in previews
    ]
    identical = len(set(verdicts)) == 1 and all(f == failed[0] for f in failed)
    top, count = Counter(verdicts).most_common(1)[0]
    return RepeatSummary(
        runs=len(previews),
        verdicts=verdicts,
        failed_rules=failed,
        identical=identical,
        majority=f"{top} ({count} of {len(previews)})",
    )
