"""Canary analysis (deploy/canary.py): the decisions on plain counts, and by simulation the two
figures that make a sequential test worth having: the false-alarm rate when the watcher looks
after every batch of feedback, and how soon a clearly worse canary is rolled back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from ct_llm.deploy.canary import (
    ArmFeedback,
    CanaryPolicy,
    decide_canary,
    msprt_half_width,
    msprt_log_lr,
)

THUMBS_ONLY = CanaryPolicy(metrics=["thumbs_down_rate"])


def thumbs(n: int, down: int) -> ArmFeedback:
    return ArmFeedback(thumbs=n, thumbs_down=down)


def ratings(values: list[int]) -> ArmFeedback:
    return ArmFeedback.from_votes(("rating", v) for v in values)


def test_clearly_worse_canary_is_rolled_back() -> None:
    d = decide_canary(thumbs(100, 30), thumbs(900, 90))
    assert d.action == "rollback"
    assert d.reasons[0].startswith("thumbs-down rate: canary 30.0% (100 votes)")
    assert "worse" in d.reasons[0]
    t = d.metrics["thumbs_down_rate"]
    assert t["verdict"] == "worse" and t["harm"] == pytest.approx(0.2)
    assert t["p_value"] < 0.025 and t["harm_low"] > 0  # alpha 0.05 shared by two metrics
    assert d.metrics["mean_rating"]["verdict"] == "too few votes"


def test_clearly_better_canary_is_promoted() -> None:
    d = decide_canary(thumbs(100, 5), thumbs(900, 270))
    assert d.action == "promote" and "better" in d.reasons[0]
    assert d.metrics["thumbs_down_rate"]["harm_high"] < 0


def test_too_few_votes_waits_however_large_the_difference() -> None:
    d = decide_canary(thumbs(29, 29), thumbs(900, 90))
    assert d.action == "wait"
    assert d.metrics["thumbs_down_rate"]["verdict"] == "too few votes"
    assert d.reasons[0] == "29 of 400 canary votes; no significant difference yet"
    # Production needs min_samples too, also once the canary reached max_samples.
    d = decide_canary(thumbs(400, 360), thumbs(29, 3))
    assert d.action == "wait" and "no metric has 30 votes on both arms" in d.reasons[0]


def test_no_difference_waits_then_promotes_at_max_samples() -> None:
    assert decide_canary(thumbs(390, 39), thumbs(3510, 351)).action == "wait"
    d = decide_canary(thumbs(400, 40), thumbs(3600, 360))
    assert d.action == "promote"
    assert d.reasons[0] == "400 of 400 canary votes (max_samples reached) and no significant harm"
    assert d.metrics["thumbs_down_rate"]["verdict"] == "no difference"


def test_ratings_only_feedback_is_analysed() -> None:
    worse = decide_canary(ratings([2, 3] * 30), ratings([4, 5, 4] * 100))
    assert worse.action == "rollback" and worse.reasons[0].startswith("mean rating: canary 2.50")
    assert worse.metrics["mean_rating"]["harm"] == pytest.approx(4.333333 - 2.5)
    assert worse.metrics["thumbs_down_rate"]["verdict"] == "too few votes"
    better = decide_canary(ratings([5, 5, 4] * 20), ratings([3, 4, 2] * 100))
    assert better.action == "promote" and better.metrics["mean_rating"]["harm"] < 0


def test_any_worse_metric_wins_over_a_better_one() -> None:
    canary = ArmFeedback(
        thumbs=100, thumbs_down=2, ratings=60, rating_sum=60 * 1.5, rating_sum_sq=60 * 2.5
    )
    production = ArmFeedback(
        thumbs=900, thumbs_down=270, ratings=300, rating_sum=300 * 4.5, rating_sum_sq=300 * 20.5
    )
    d = decide_canary(canary, production)
    assert d.metrics["thumbs_down_rate"]["verdict"] == "better"
    assert d.action == "rollback" and d.reasons[0].startswith("mean rating")


def test_non_inferiority_margin_holds_a_no_harm_promotion_until_the_bound_is_met() -> None:
    tight = CanaryPolicy(max_harm_thumbs_down=0.01)
    d = decide_canary(thumbs(400, 40), thumbs(3600, 360), tight)
    assert d.action == "wait" and "harm could still be" in d.reasons[1]
    loose = CanaryPolicy(max_harm_thumbs_down=0.1)
    assert decide_canary(thumbs(400, 40), thumbs(3600, 360), loose).action == "promote"
    # A margin on a metric nobody votes on can never be shown: wait, and say why.
    d = decide_canary(thumbs(400, 40), thumbs(3600, 360), CanaryPolicy(max_harm_rating=0.5))
    assert d.action == "wait" and "too few votes to bound" in d.reasons[1]


def test_max_duration_promotes_a_harmless_canary_but_not_an_unmeasured_one() -> None:
    policy = CanaryPolicy(max_duration_h=48)
    assert decide_canary(thumbs(60, 6), thumbs(540, 54), policy, elapsed_h=47).action == "wait"
    d = decide_canary(thumbs(60, 6), thumbs(540, 54), policy, elapsed_h=49)
    assert d.action == "promote" and "(overdue)" in d.reasons[0]
    d = decide_canary(thumbs(10, 1), thumbs(540, 54), policy, elapsed_h=49)
    assert d.action == "wait" and "by hand" in d.reasons[0]


def test_unanimous_arms_do_not_divide_by_zero() -> None:
    d = decide_canary(thumbs(400, 0), thumbs(3600, 0), THUMBS_ONLY)
    assert d.action == "promote" and d.metrics["thumbs_down_rate"]["verdict"] == "no difference"
    # 0 of 40 is not certainty: the interval keeps a width (pseudo-votes in the variance).
    t = decide_canary(thumbs(40, 0), thumbs(400, 0), THUMBS_ONLY).metrics["thumbs_down_rate"]
    assert t["harm_high"] > 0.01


def test_decision_serialises_and_from_votes_counts_like_feedback_stats() -> None:
    arm = ArmFeedback.from_votes(
        [("thumbs", False), ("thumbs", True), ("thumbs", 0), ("rating", 4), ("rating", True)]
        + [("rating", 2), ("rating", 7), ("edit", "x")]
    )
    assert arm == ArmFeedback(thumbs=2, thumbs_down=1, ratings=2, rating_sum=6, rating_sum_sq=20)
    d = decide_canary(arm, arm, elapsed_h=1.5)
    assert json.loads(json.dumps(d.to_dict()))["metrics"]["elapsed_h"] == 1.5


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="exceeds max_samples"):
        CanaryPolicy(min_samples=50, max_samples=40)
    with pytest.raises(ValidationError, match="once each"):
        CanaryPolicy(metrics=["mean_rating", "mean_rating"])
    with pytest.raises(ValidationError):
        CanaryPolicy(metrics=["latency"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="inconsistent"):
        ArmFeedback(thumbs=3, thumbs_down=4)


def test_confidence_interval_is_the_inverted_test() -> None:
    var, tau2, alpha = 0.0004, 0.01, 0.025
    half = msprt_half_width(var, tau2, alpha)
    assert msprt_log_lr(half, var, tau2) == pytest.approx(math.log(1 / alpha))
    assert msprt_log_lr(0.99 * half, var, tau2) < math.log(1 / alpha)


# The simulation: canary weight 0.1, so each look adds 10 canary and 90 production thumbs, up to
# max_samples = 400 canary votes (40 looks). THUMBS_ONLY puts the whole alpha on the one metric.
BATCH, RATIO, LOOKS = 10, 9, 40


def _streams(
    rng: np.random.Generator, runs: int, p_canary: float, p_production: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative thumbs-down counts of each arm at each look, shape (runs, LOOKS)."""
    canary = rng.binomial(BATCH, p_canary, size=(runs, LOOKS)).cumsum(axis=1)
    production = rng.binomial(BATCH * RATIO, p_production, size=(runs, LOOKS)).cumsum(axis=1)
    return canary, production


def _watch(canary: np.ndarray, production: np.ndarray) -> tuple[str, str, int]:
    """Decide after every batch as canary_watch would; stop at the first action.
    Returns (action, its first reason, canary votes when it was taken)."""
    for look in range(LOOKS):
        n = (look + 1) * BATCH
        d = decide_canary(
            thumbs(n, int(canary[look])), thumbs(n * RATIO, int(production[look])), THUMBS_ONLY
        )
        if d.action != "wait":
            return d.action, d.reasons[0], n
    return "wait", "", LOOKS * BATCH


def test_false_alarm_rate_with_a_look_after_every_batch_stays_below_alpha() -> None:
    runs, rate = 1000, 0.1
    canary, production = _streams(np.random.default_rng(7), runs, rate, rate)
    outcomes = [_watch(c, p) for c, p in zip(canary, production, strict=True)]
    wrong = sum(
        a == "rollback" or (a == "promote" and "max_samples" not in r) for a, r, _ in outcomes
    )
    # Measured: 14 of 1000 (1.4%: 9 rollbacks, 5 promotions) against alpha 5%. Other streams,
    # 2000 runs each: 1.45% at a 30% thumbs-down rate, 3.45% at 1% (where the normal
    # approximation is weakest); ratings (1-5, mean 4) 1.5%.
    assert 0.008 <= wrong / runs <= 0.025  # seeded: pinned near the measured 1.4%
    at_max = sum(a == "promote" and "max_samples" in r for a, r, _ in outcomes)
    assert at_max == runs - wrong  # every other run ends promoted at max_samples
    # The same streams with a fixed-sample z-test at 5% checked at every look from min_samples
    # on: the peeking problem this test exists for. Measured: 24.7% of runs.
    n = np.arange(1, LOOKS + 1) * BATCH
    pooled = (canary + production) / (n * (1 + RATIO))
    se = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / (n * RATIO)))
    z = (canary / n - production / (n * RATIO)) / se
    peeking = float((np.abs(z[:, 2:]) > 1.96).any(axis=1).mean())
    assert 0.2 <= peeking <= 0.3 and peeking > 3 * THUMBS_ONLY.alpha  # measured 24.7%


def test_a_canary_with_three_times_the_thumbs_down_is_rolled_back_quickly() -> None:
    runs = 200
    canary, production = _streams(np.random.default_rng(11), runs, 0.3, 0.1)
    outcomes = [_watch(c, p) for c, p in zip(canary, production, strict=True)]
    assert all(a == "rollback" for a, _, _ in outcomes)
    delays = np.array([n for _, _, n in outcomes])
    # Measured (canary votes at rollback): median 40, 90th percentile 70, max 110; nothing is
    # tested before min_samples = 30. Other mixture scales on 500 runs: tau 0.1 -> median 60,
    # 0.15 -> 50, 0.25 -> 40, 0.35 -> 40, 0.5 -> 30 (p90 90 / 80 / 70 / 70 / 70).
    assert np.median(delays) <= 50
    assert np.percentile(delays, 90) <= 90
