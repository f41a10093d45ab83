"""What a vote is, and the votes one group of answers received (a canary arm, a drift window):
thumbs and 1-5 ratings, kept as counts and moments so both statistical tests that read live
feedback - the canary analysis (deploy/canary.py) and the quality-drift trigger (loop/drift.py) -
work from the same few numbers. Pure; feedback/vote_query.py reads the rows.

A vote that may decide a rollout (README "Trust model") is a thumbs or rating event
- about a response the gateway logged (free-standing events feed curation, never a rollout), of
  the version the log says served it;
- counted once per voter and response and kind, with the voter's latest value (a re-click is not
  new evidence);
- whose voter is the end user the log names for that response, or a reviewer; when the log names
  nobody, the response itself is the voter (one vote per answer), since a claimed user id would
  let one key vote as many people;
- and at most `MAX_VOTES_PER_VOTER` of one voter's responses count per version, so no single
  voter moves a verdict alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

VOTE_KINDS = ("thumbs", "rating")
MAX_VOTES_PER_VOTER = 20
"""Responses per voter and version that count (canary arms and drift windows alike)."""

Metric = Literal["thumbs_down_rate", "mean_rating"]


@dataclass(frozen=True)
class VoteCounts:
    thumbs: int = 0
    thumbs_down: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    rating_sum_sq: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.thumbs_down <= self.thumbs or self.ratings < 0:
            raise ValueError(f"inconsistent vote counts {self}")

    @classmethod
    def from_votes(cls, votes: Iterable[tuple[str, Any]]) -> VoteCounts:
        """(kind, value) pairs: thumbs are bools (False = down), ratings ints 1-5; anything else
        carries no score and is skipped."""
        thumbs = down = ratings = 0
        total = total_sq = 0
        for kind, value in votes:
            if kind == "thumbs" and isinstance(value, bool):
                thumbs += 1
                down += value is False
            elif kind == "rating" and type(value) is int and 1 <= value <= 5:
                ratings += 1
                total += value
                total_sq += value * value
        return cls(thumbs, down, ratings, float(total), float(total_sq))

    @property
    def thumbs_down_rate(self) -> float | None:
        return self.thumbs_down / self.thumbs if self.thumbs else None

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None

    def moments(self, metric: Metric) -> tuple[int, float, float]:
        """(n, sum, sum of squares) of the metric's votes (thumbs: 1 per thumbs-down)."""
        if metric == "thumbs_down_rate":
            return self.thumbs, float(self.thumbs_down), float(self.thumbs_down)
        return self.ratings, self.rating_sum, self.rating_sum_sq

    def votes(self, metrics: Iterable[Metric]) -> int:
        """Votes on the given metrics."""
        return sum(self.moments(m)[0] for m in metrics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "thumbs": self.thumbs,
            "thumbs_down": self.thumbs_down,
            "thumbs_down_rate": _round(self.thumbs_down_rate),
            "ratings": self.ratings,
            "mean_rating": _round(self.mean_rating),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


@dataclass(frozen=True)
class StoredVote:
    """One stored thumbs/rating event about a logged response, in arrival order."""

    version: str
    response_id: str
    voter: str
    """The logged end user, `reviewer:<name>` for a reviewer key, else `response:<id>`."""
    kind: str
    value: Any


def voter_of(
    response_id: str, logged_user: str | None, trusted: bool, claimed_user: str | None
) -> str:
    """Who cast a vote, by the trust model: a reviewer key's event is its reviewer's; any other
    event is the logged end user's, or the answer's own when the log names nobody."""
    if trusted:
        return f"reviewer:{claimed_user or '-'}"
    if logged_user is not None:
        return f"user:{logged_user}"
    return f"response:{response_id}"


def count_votes(
    votes: Iterable[StoredVote], max_per_voter: int = MAX_VOTES_PER_VOTER
) -> dict[str, VoteCounts]:
    """Version -> its votes, by the definition in the module docstring. `votes` in arrival
    order; a voter's responses count in the order of their first vote."""
    latest: dict[tuple[str, str, str, str], Any] = {}
    for v in votes:
        latest[(v.version, v.voter, v.response_id, v.kind)] = v.value  # the latest wins
    responses: dict[tuple[str, str], set[str]] = {}
    kept: dict[str, list[tuple[str, Any]]] = {}
    for (version, voter, response_id, kind), value in latest.items():
        counted = responses.setdefault((version, voter), set())
        if response_id not in counted and len(counted) >= max_per_voter:
            continue
        counted.add(response_id)
        kept.setdefault(version, []).append((kind, value))
    return {version: VoteCounts.from_votes(pairs) for version, pairs in kept.items()}
