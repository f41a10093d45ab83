"""The statistics the gate decides with: exact values where they are known, coverage and
false-alarm rates from seeded simulations (pinned near what the README states)."""

from __future__ import annotations

import math
import random

import pytest

from ct_llm.stats import (
    PairedCounts,
    binomial_upper_tail,
    bootstrap_percentile,
    bootstrap_ratio,
    detectable_drop,
    mcnemar_worse_p,
    paired_difference_interval,
    percentile,
    wilson_interval,
)


def test_exact_binomial_and_mcnemar() -> None:
    assert binomial_upper_tail(0, 5) == 1.0 and binomial_upper_tail(6, 5) == 0.0
    assert binomial_upper_tail(5, 5) == pytest.approx(1 / 32)
    assert binomial_upper_tail(3, 4) == pytest.approx(5 / 16)
    assert mcnemar_worse_p(5, 0) == pytest.approx(0.03125)
    assert mcnemar_worse_p(4, 0) == pytest.approx(0.0625)
    assert mcnemar_worse_p(0, 0) == 1.0
    assert mcnemar_worse_p(6, 4) == pytest.approx(
        sum(math.comb(10, i) for i in range(6, 11)) / 1024
    )


def test_paired_interval_contains_the_difference_and_is_bounded() -> None:
    for t in [
        PairedCounts(140, 0, 0, 10),
        PairedCounts(0, 0, 40, 0),
        PairedCounts(0, 40, 0, 0),
        PairedCounts(100, 5, 9, 36),
        PairedCounts(1, 0, 0, 0),
    ]:
        low, high = paired_difference_interval(t)
        assert -1.0 <= low <= t.difference <= high <= 1.0, t
    assert paired_difference_interval(PairedCounts(0, 0, 0, 0)) == (-1.0, 1.0)
    # More cases, narrower interval.
    w150 = paired_difference_interval(PairedCounts(140, 2, 2, 6))
    w1500 = paired_difference_interval(PairedCounts(1400, 20, 20, 60))
    assert w1500[1] - w1500[0] < (w150[1] - w150[0]) / 2


def test_paired_interval_coverage_is_near_nominal() -> None:
    """Seeded simulation: 150 paired cases, candidate passes 90%, production 92%, 4% of cases
    discordant each way plus the difference. Measured coverage of the 95% interval: 0.962."""
    rng = random.Random(7)
    probs = {"both": 0.86, "gained": 0.04, "lost": 0.06, "neither": 0.04}
    true_diff = probs["gained"] - probs["lost"]
    covered, runs = 0, 1000
    for _ in range(runs):
        counts = dict.fromkeys(probs, 0)
        for _case in range(150):
            counts[rng.choices(list(probs), weights=list(probs.values()))[0]] += 1
        low, high = paired_difference_interval(PairedCounts(**counts))
        covered += low <= true_diff <= high
    assert covered / runs == pytest.approx(0.962, abs=0.02)


def test_detectable_drop_grows_with_noise_and_shrinks_with_a_looser_rule() -> None:
    def rule(alpha: float):  # type: ignore[no-untyped-def]
        return lambda lost, gained: mcnemar_worse_p(lost, gained) < alpha

    quiet = detectable_drop(145, 5, 0.0, rule(0.05))
    noisy = detectable_drop(145, 5, 0.2, rule(0.05))
    assert quiet == 7 and noisy is not None and noisy > quiet
    assert detectable_drop(145, 5, 0.0, rule(0.2)) < quiet
    assert detectable_drop(3, 0, 0.0, rule(0.05)) is None  # 3 cases can never be significant


def test_bootstrap_is_seeded_and_brackets_the_statistic() -> None:
    rng = random.Random(3)
    a = [100 + rng.gauss(0, 10) for _ in range(40)]
    b = [200 + rng.gauss(0, 20) for _ in range(40)]
    r = bootstrap_ratio(b, a, 50)
    assert r is not None and r.low <= r.value <= r.high and 1.8 < r.value < 2.2
    assert bootstrap_ratio(b, a, 50) == r  # same data, same interval
    assert bootstrap_ratio([], a, 50) is None and bootstrap_ratio(a, [0.0], 50) is None
    p = bootstrap_percentile(a, 95)
    assert p is not None and p.low <= p.value <= p.high
    assert bootstrap_percentile([], 95) is None


def test_bootstrap_ratio_false_alarms_on_equal_models() -> None:
    """Two models with the same latency distribution, 32 requests each (4 rounds of 8): how
    often is the p95 ratio's 90% interval entirely above 1.1 (the default limit), i.e. the
    gate rejects an adapter that costs nothing more? Seeded; measured 0 of 200."""
    rng = random.Random(11)
    beyond = 0
    for seed in range(200):
        a = [rng.lognormvariate(7, 0.15) for _ in range(32)]
        b = [rng.lognormvariate(7, 0.15) for _ in range(32)]
        r = bootstrap_ratio(a, b, 95, confidence=0.9, resamples=300, seed=seed)
        assert r is not None
        beyond += r.low > 1.1
    assert beyond == 0


def test_wilson_and_percentile() -> None:
    low, high = wilson_interval(8, 10)
    assert 0.49 < low < 0.5 and 0.94 < high < 0.95
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
