"""Pairwise judging's pure parts: verdict parsing, the two-order rule, the Wilson interval."""

from __future__ import annotations

import math

import pytest

from ct_llm.evals.pairwise import combine_orders, parse_verdict, win_rate
from ct_llm.stats import wilson_interval


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"winner": "A", "reason": "more precise"}', "A"),
        ('{"winner": "tie"}', "tie"),
        ("Answer B cites the policy. [[B]]", "B"),
        ("Both are equally good. [[C]]", "tie"),
        ("Reasoning... Winner: A", "A"),
        ("I like [[A]] but also [[B]]", None),
        ("Both answers have merit.", None),
        ('{"winner": "neither"}', None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None) -> None:
    assert parse_verdict(text) == verdict


def test_a_win_needs_both_orders_and_inconsistency_is_a_tie() -> None:
    assert combine_orders("A", "B") == "win"  # preferred first and second
    assert combine_orders("B", "A") == "loss"
    assert combine_orders("A", "A") == "tie"  # position bias: the first answer always wins
    assert combine_orders("A", "tie") == "tie"
    assert combine_orders("tie", "tie") == "tie"
    assert combine_orders(None, "B") == "unparseable"


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(8, 10)
    # 8/10 at 95%: the textbook Wilson interval is [0.4902, 0.9433]
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and 0 < wilson_interval(0, 10)[1] < 0.35
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    import random

    rng, p, n, trials = random.Random(0), 0.3, 40, 2000
    covered = 0
    for _ in range(trials):
        k = sum(rng.random() < p for _ in range(n))
        low, high = wilson_interval(k, n)
        covered += low <= p <= high
    assert 0.93 <= covered / trials <= 0.97


def test_win_rate_counts_ties_half_and_leaves_unparseable_out() -> None:
    wr = win_rate(["win"] * 6 + ["loss"] * 2 + ["tie"] * 2 + ["unparseable"] * 3)
    assert (wr.wins, wr.losses, wr.ties, wr.unparseable, wr.n) == (6, 2, 2, 3, 10)
    assert wr.rate == 0.7
    assert wr.low < 0.7 < wr.high
    assert not math.isnan(win_rate([]).low) and win_rate([]).rate == 0.5
