"""Pairwise judging, the pure part: reading a judge's verdict, combining the two presentation
orders, and the candidate's win rate with a confidence interval.

Each comparison is asked twice, candidate first and candidate second, because LLM judges
prefer one position (MT-Bench, Zheng et al. 2023). As there, the candidate wins a comparison only
when the judge prefers it in both orders and loses only when it prefers production in both;
anything else is a tie. A verdict that cannot be read in either order makes the comparison
`unparseable`: counted and reported, never guessed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from ct_llm.stats import wilson_interval

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "loss", "tie", "unparseable"]

# Guided decoding (a JSON schema) is asked for where the server supports it; these are the
# fallbacks for free text: {"winner": "A"}, MT-Bench's [[A]] / [[C]], or a lone final letter.
_BRACKETS = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_FINAL = re.compile(r"(?:^|\W)(?:winner|verdict|answer)\s*[:=]?\s*\"?(A|B|tie)\b", re.IGNORECASE)


def parse_verdict(text: str) -> Verdict | None:
    """The judge's choice in `text` (A = the first answer shown), or None when it cannot be
    read unambiguously."""
    text = text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("winner"), str):
        return _normalise(data["winner"])
    found = {_normalise(m) for m in _BRACKETS.findall(text)}
    found.discard(None)
    if len(found) == 1:
        return found.pop()
    if found:
        return None  # both [[A]] and [[B]]: no verdict
    found = {_normalise(m) for m in _FINAL.findall(text)}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _normalise(value: str) -> Verdict | None:
    v = value.strip().strip('"').lower()
    if v == "a":
        return "A"
    if v == "b":
        return "B"
    if v in ("tie", "c", "equal", "draw"):
        return "tie"
    return None


def combine_orders(candidate_first: Verdict | None, candidate_second: Verdict | None) -> Outcome:
    """One comparison's outcome for the candidate from the verdicts of both orders."""
    if candidate_first is None or candidate_second is None:
        return "unparseable"
    prefers_candidate = (candidate_first == "A", candidate_second == "B")
    prefers_production = (candidate_first == "B", candidate_second == "A")
    if all(prefers_candidate):
        return "win"
    if all(prefers_production):
        return "loss"
    return "tie"


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    ties: int
    unparseable: int
    rate: float
    """(wins + ties / 2) / decided comparisons: 0.5 means no better, no worse."""
    low: float
    high: float
    """95% Wilson interval of `rate`; the gate reads `low`."""

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties


def win_rate(outcomes: list[Outcome], z: float = 1.96) -> WinRate:
    """The candidate's win rate over comparisons, ties counting half, unparseable left out."""
    counts = Counter(outcomes)
    wins, losses, ties = counts["win"], counts["loss"], counts["tie"]
    n = wins + losses + ties
    score = wins + ties / 2
    rate = score / n if n else 0.5
    low, high = wilson_interval(score, n, z)
    return WinRate(wins, losses, ties, counts["unparseable"], round(rate, 4), low, high)
