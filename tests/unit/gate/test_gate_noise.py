"""The shipped policy's pass-rate rule under noise, by seeded simulation: how often it rejects
a candidate that is as good as production (false alarms), and how often it catches a real drop.
The figures are pinned near the measured values that README's gate section states."""

from __future__ import annotations

import random

from ct_llm.gate.policy import GatePolicy, decide_promotion
from ct_llm.gate.types import ModelScores, SuiteScore
from ct_llm.stats import PairedCounts

POLICY = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=None)
CASES, PROD_PASSES, FLIP = 150, 145, 0.02


def _observed(truth: list[bool], rng: random.Random) -> list[bool]:
    """Each answer's outcome flips with probability FLIP (batch composition, bf16)."""
    return [t != (rng.random() < FLIP) for t in truth]


def _rejected(cand: list[bool], prod: list[bool]) -> bool:
    t = PairedCounts(
        both=sum(c and p for c, p in zip(cand, prod, strict=True)),
        gained=sum(c and not p for c, p in zip(cand, prod, strict=True)),
        lost=sum(p and not c for c, p in zip(cand, prod, strict=True)),
        neither=sum(not c and not p for c, p in zip(cand, prod, strict=True)),
    )
    suite = SuiteScore("regression", (t.both + t.gained) / t.n, t.n, paired=t)
    prod_suite = SuiteScore("regression", (t.both + t.lost) / t.n, t.n)
    decision = decide_promotion(
        ModelScores("c", {"general": suite}), ModelScores("p", {"general": prod_suite}), POLICY
    )
    return not decision.approved


def _rate(drop: int, runs: int, seed: int) -> float:
    rng = random.Random(seed)
    prod_truth = [i < PROD_PASSES for i in range(CASES)]
    cand_truth = [i < PROD_PASSES - drop for i in range(CASES)]
    hits = sum(
        _rejected(_observed(cand_truth, rng), _observed(prod_truth, rng)) for _ in range(runs)
    )
    return hits / runs


def test_an_equal_candidate_is_rarely_rejected() -> None:
    # Measured: 26 of 1000 runs (2.6%) with 2% of answers flipping per model and no flaky case
    # caught by the recheck (which leaves such flips out in a real eval).
    assert 0.02 <= _rate(drop=0, runs=1000, seed=1) <= 0.032  # seeded: pinned near 2.6%


def test_a_real_drop_of_eight_cases_is_caught() -> None:
    # Measured: a candidate that really loses 8 of 150 cases (5.3 points) is rejected in 93% of
    # 400 runs; 4 cases (2.7 points) in 36%.
    assert 0.9 <= _rate(drop=8, runs=400, seed=2) <= 0.96
    assert 0.31 <= _rate(drop=4, runs=400, seed=3) <= 0.41
