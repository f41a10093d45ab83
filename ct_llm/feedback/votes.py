"""The votes one group of answers received (a canary arm, a drift window): thumbs and 1-5
ratings, kept as counts and moments so both statistical tests that read live feedback - the
canary analysis (deploy/canary.py) and the quality-drift trigger (loop/drift.py) - work from the
same few numbers a grouped SQL query returns. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

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
