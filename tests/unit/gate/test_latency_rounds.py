"""The latency rule resamples rounds, not requests (gate/latency.py): a slow spell of the
machine during one round widens the interval instead of deciding the gate."""

from __future__ import annotations

import random
from typing import Any

from ct_llm.gate.latency import assess_latency
from ct_llm.gate.policy import GatePolicy
from ct_llm.gate.types import LatencySamples
from ct_llm.stats import bootstrap_ratio, bootstrap_ratio_by_round

POLICY = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=1.10)


def rounds(rng: random.Random, means: list[float], per_round: int = 8) -> list[list[float]]:
    return [[m + rng.gauss(0, 0.02 * m) for _ in range(per_round)] for m in means]


def test_a_slow_spell_in_one_round_leaves_the_rule_undecided() -> None:
    rng = random.Random(3)
    ref = rounds(rng, [1000, 1000, 1000, 1000])
    # The same model, but another job took the cores during the candidate's third round.
    cand = rounds(rng, [1000, 1000, 1700, 1000])
    by_request = bootstrap_ratio(
        [x for r in cand for x in r], [x for r in ref for x in r], 95, confidence=0.9
    )
    assert by_request is not None and by_request.low > 1.10  # would reject: noise decides
    s = LatencySamples.from_rounds(cand, ref, "reference adapter")
    a = assess_latency(s, POLICY)
    assert a.state == "undecided", a.parts  # more rounds, then the policy's stated default
    assert a.ratio is not None and a.ratio.low < 1.10 < a.ratio.high


def test_a_candidate_slow_in_every_round_is_beyond_and_an_equal_one_within() -> None:
    rng = random.Random(4)
    ref = rounds(rng, [1000, 1100, 950, 1050])
    slow = rounds(rng, [1400, 1540, 1330, 1470])  # 1.4x, whatever the machine's pace
    same = rounds(rng, [1000, 1100, 950, 1050])
    assert assess_latency(LatencySamples.from_rounds(slow, ref, "r"), POLICY).state == "beyond"
    assert assess_latency(LatencySamples.from_rounds(same, ref, "r"), POLICY).state == "within"


def test_rounds_that_do_not_pair_fall_back_to_requests() -> None:
    assert bootstrap_ratio_by_round([[1.0]], [[1.0]], 95) is None  # one round: no spread
    assert bootstrap_ratio_by_round([[1.0], [1.0]], [[1.0]], 95) is None
    got = bootstrap_ratio_by_round([[2.0, 2.0], [2.0]], [[1.0], [1.0, 1.0]], 50)
    assert got is not None and (got.value, got.low, got.high) == (2.0, 2.0, 2.0)


def test_the_interval_is_the_same_when_computed_again() -> None:
    rng = random.Random(5)
    cand, ref = rounds(rng, [1000, 1200, 900, 1000]), rounds(rng, [1000, 1100, 950, 1000])
    first: Any = bootstrap_ratio_by_round(cand, ref, 95, confidence=0.9)
    assert first == bootstrap_ratio_by_round(cand, ref, 95, confidence=0.9)
