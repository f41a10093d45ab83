"""Quality per version and per day from the store's aggregate rows (pure)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from ct_llm.feedback.stats import summarize_votes
from ct_llm.feedback.votes import VoteCounts
from ct_llm.monitor.quality import (
    chart_days,
    daily_quality,
    day_range,
    parse_vote,
    quality_series,
    tally_by_version,
)


@pytest.mark.parametrize(
    ("kind", "text", "vote"),
    [
        ("thumbs", "true", True),
        ("thumbs", "false", False),
        ("thumbs", "1", None),  # a number is not a thumbs vote
        ("rating", "4", 4),
        ("rating", "true", None),  # bool is an int in Python; not a rating of 1
        ("rating", "4.5", None),
        ("rating", '"4"', None),
        ("rating", "not json", None),
        ("rating", None, None),
        ("edit", '"text"', None),
    ],
)
def test_parse_vote(kind: str, text: str | None, vote: Any) -> None:
    assert parse_vote(kind, text) == vote
    assert type(parse_vote(kind, text)) is type(vote)


def _grouped(events: list[tuple[str | None, str, Any]]) -> list[tuple[str | None, str, str, int]]:
    """What the store's GROUP BY hands back for these events."""
    counts = Counter((v, k, json.dumps(x)) for v, k, x in events)
    return [(v, k, t, n) for (v, k, t), n in counts.items()]


def test_tally_from_grouped_rows_matches_the_per_event_summary() -> None:
    events: list[tuple[str | None, str, Any]] = [
        ("v1", "thumbs", True),
        ("v1", "thumbs", False),
        ("v1", "thumbs", False),
        ("v1", "rating", 5),
        ("v1", "rating", 2),
        ("v1", "rating", 2),
        ("v2", "thumbs", True),
        ("v2", "rating", True),  # invalid: ignored by both
        (None, "thumbs", False),
        ("v3", "rating", 3),
    ]
    got = {v: t.to_dict() for v, t in tally_by_version(_grouped(events)).items()}
    assert got == summarize_votes(events)
    assert got["v1"]["thumbs_down_rate"] == pytest.approx(2 / 3)
    assert got["v1"]["mean_rating"] == pytest.approx(3.0)
    assert got["unknown"]["thumbs_down"] == 1
    assert got["v3"]["thumbs_down_rate"] is None


def test_daily_quality_per_day_and_version_skips_days_without_votes() -> None:
    counts = {
        ("2026-01-02", "v1"): VoteCounts.from_votes([("thumbs", False)] * 3 + [("thumbs", True)]),
        ("2026-01-01", "v1"): VoteCounts.from_votes([("rating", 4)] * 2 + [("rating", 2)] * 2),
        ("2026-01-02", "v2"): VoteCounts.from_votes([("rating", 5)]),
        ("2026-01-03", "v2"): VoteCounts.from_votes([("rating", True)] * 9),  # no valid vote
    }
    days = daily_quality(counts)
    assert [(d.day, d.version) for d in days] == [
        ("2026-01-01", "v1"),
        ("2026-01-02", "v1"),
        ("2026-01-02", "v2"),
    ]
    assert days[0].counts.mean_rating == 3.0 and days[0].counts.thumbs_down_rate is None
    assert days[1].counts.thumbs_down_rate == 0.75 and days[1].counts.thumbs == 4


def test_quality_series_gives_points_per_version_in_day_order() -> None:
    days = [
        d.to_dict()
        for d in daily_quality(
            {
                ("2026-01-03", "v1"): VoteCounts.from_votes([("thumbs", False)]),
                ("2026-01-01", "v1"): VoteCounts.from_votes([("thumbs", True)] * 4),
                ("2026-01-02", "v2"): VoteCounts.from_votes([("rating", 4)] * 2),
            }
        )
    ]
    assert quality_series(days, "thumbs_down_rate") == {
        "v1": [("2026-01-01", 0.0, 4), ("2026-01-03", 1.0, 1)]
    }
    assert quality_series(days, "mean_rating") == {"v2": [("2026-01-02", 4.0, 2)]}
    with pytest.raises(ValueError, match="unknown quality metric"):
        quality_series(days, "latency")


def test_day_range_and_chart_days() -> None:
    assert day_range("2025-12-30", "2026-01-02") == [
        "2025-12-30",
        "2025-12-31",
        "2026-01-01",
        "2026-01-02",
    ]
    assert day_range("2026-01-02", "2026-01-01") == []
    # Data from the 20th on: the axis starts there, not at the window's first day...
    days = chart_days("2026-01-01", "2026-01-30", ["2026-01-25", "2026-01-20"], min_days=7)
    assert days[0] == "2026-01-20" and days[-1] == "2026-01-30"
    # ...but spans at least min_days, and never leaves the window.
    assert chart_days("2026-01-01", "2026-01-30", ["2026-01-29"], min_days=7)[0] == "2026-01-24"
    assert chart_days("2026-01-28", "2026-01-30", [], min_days=7)[0] == "2026-01-28"
    assert chart_days("2026-01-01", "2026-01-30", ["2025-12-01"], min_days=3)[0] == "2026-01-28"
