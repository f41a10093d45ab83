"""Feedback quality per model version, overall and per day: pure functions.

Overall (`ct-llm status`, the metrics): the store counts events grouped by model version, kind
and the vote's JSON text (monitor/queries.py), so Python receives a few rows per version however
many events there are; this module turns them into thumbs-down rates and mean ratings with the
rules of feedback/stats.py: a thumbs vote is a JSON boolean, a rating a JSON integer, and
anything else (an old or hand-inserted row) is not a vote and is left out rather than guessed.

Per day (the status page's chart): the votes as the canary and drift count them
(feedback/votes.py: about a logged response, one per voter and answer, capped per voter), read
by feedback/vote_query.daily_vote_counts, so the chart shows what decides a rollout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ct_llm.feedback.vote_query import UNKNOWN_VERSION
from ct_llm.feedback.votes import VoteCounts


def parse_vote(kind: str, value_text: str | None) -> bool | int | None:
    """The vote a stored value holds: a bool for thumbs (False = down), an int for a rating,
    None when the row is not a valid vote of its kind."""
    if value_text is None:
        return None
    try:
        value = json.loads(value_text)
    except ValueError:
        return None
    if kind == "thumbs" and isinstance(value, bool):
        return value
    # bool is an int in Python: a rating of `true` is not a rating of 1.
    if kind == "rating" and isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


@dataclass
class VoteTally:
    """Votes of one model version (over some period): counts and the two quality figures."""

    thumbs: int = 0
    thumbs_down: int = 0
    ratings: int = 0
    rating_sum: int = 0

    def add(self, kind: str, value_text: str | None, n: int) -> None:
        vote = parse_vote(kind, value_text)
        if vote is None:
            return
        if kind == "thumbs":
            self.thumbs += n
            self.thumbs_down += n if vote is False else 0
        else:
            self.ratings += n
            self.rating_sum += int(vote) * n

    @property
    def thumbs_down_rate(self) -> float | None:
        return self.thumbs_down / self.thumbs if self.thumbs else None

    @property
    def mean_rating(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None

    def to_dict(self) -> dict[str, Any]:
        """The shape of feedback/stats.py's `summarize_votes` entries."""
        return {
            "thumbs": self.thumbs,
            "thumbs_down": self.thumbs_down,
            "thumbs_down_rate": self.thumbs_down_rate,
            "ratings": self.ratings,
            "mean_rating": self.mean_rating,
        }


def tally_by_version(
    rows: Iterable[tuple[str | None, str, str | None, int]],
) -> dict[str, VoteTally]:
    """(model_version, kind, value_text, count) rows -> a tally per version, sorted by name."""
    acc: dict[str, VoteTally] = {}
    for version, kind, value_text, n in rows:
        acc.setdefault(version or UNKNOWN_VERSION, VoteTally()).add(kind, value_text, n)
    return dict(sorted(acc.items()))


@dataclass(frozen=True)
class DailyQuality:
    """One model version's votes received on one UTC day, by the vote definition of
    feedback/votes.py (about a logged response, one per voter and answer, capped per voter)."""

    day: str
    """ISO date, YYYY-MM-DD (UTC)."""
    version: str
    counts: VoteCounts

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "version": self.version, **self.counts.to_dict()}


def daily_quality(counts: Mapping[tuple[str, str], VoteCounts]) -> list[DailyQuality]:
    """(day, version) -> counts (feedback/vote_query.daily_vote_counts) -> one entry per day and
    version that has at least one vote, ordered by day, then version."""
    return [
        DailyQuality(day, version, c)
        for (day, version), c in sorted(counts.items())
        if c.thumbs or c.ratings
    ]


def day_range(first: str, last: str) -> list[str]:
    """Every ISO day from `first` to `last`, both included (empty when last < first)."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


Point = tuple[str, float, int]
"""(day, value, votes behind the value)."""


def quality_series(days: list[dict[str, Any]], metric: str) -> dict[str, list[Point]]:
    """Per version, the days on which `metric` (`thumbs_down_rate` or `mean_rating`) has a value,
    in day order: the points of one line of the quality chart. `days` holds
    `DailyQuality.to_dict()` entries (the status page's payload)."""
    if metric not in ("thumbs_down_rate", "mean_rating"):
        raise ValueError(f"unknown quality metric {metric!r}")
    votes_of = "thumbs" if metric == "thumbs_down_rate" else "ratings"
    series: dict[str, list[Point]] = {}
    for d in sorted(days, key=lambda d: (d["version"], d["day"])):
        value = d.get(metric)
        if value is not None:
            series.setdefault(d["version"], []).append((d["day"], value, d[votes_of]))
    return series


def chart_days(
    first_day: str, last_day: str, marked_days: list[str], min_days: int = 7
) -> list[str]:
    """The days a quality chart spans: from the first day that has a point or a mark (but at
    least `min_days` back from `last_day`, and never before `first_day`) to `last_day`, so a
    young deployment's few days are not squeezed into the right edge of a 30-day axis."""
    window = day_range(first_day, last_day)
    if not window:
        return []
    in_window = sorted(d for d in marked_days if first_day <= d <= last_day)
    start = in_window[0] if in_window else last_day
    floor = window[max(0, len(window) - min_days)]
    return day_range(max(first_day, min(start, floor)), last_day)
