"""The prompt-distribution test on synthetic embeddings (the real model:
tests/integration/test_cycle_prompt_drift.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from ct_llm.loop.prompt_drift import mean_shift_test, prompt_drift_trigger

T = datetime(2025, 3, 9, tzinfo=timezone.utc)


def unit_rows(rng: np.random.Generator, n: int, center: np.ndarray) -> np.ndarray:
    x = center + rng.normal(size=(n, len(center)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_false_alarm_rate_matches_alpha_and_a_topic_shift_is_found():
    rng = np.random.default_rng(0)
    center = rng.normal(size=32) * 0.3
    # 200 comparisons of two samples of one distribution: the p-value is uniform, so about
    # 5% fall at or below 0.05 (measured: 6.0%).
    p_same = [
        mean_shift_test(
            unit_rows(rng, 60, center), unit_rows(rng, 60, center), permutations=199, seed=i
        )[1]
        for i in range(200)
    ]
    rate = np.mean(np.array(p_same) <= 0.05)
    assert 0.04 <= rate <= 0.08, rate  # seeded: measured 6.0%
    # Half of the recent prompts on a new subject (another direction): found every time.
    other = center.copy()
    other[:4] += 1.5
    p_shift = [
        mean_shift_test(
            unit_rows(rng, 60, center),
            np.vstack([unit_rows(rng, 30, center), unit_rows(rng, 30, other)]),
            permutations=199,
            seed=i,
        )[1]
        for i in range(20)
    ]
    assert max(p_shift) <= 0.01


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="2-D with one width"):
        mean_shift_test(np.zeros((3, 4)), np.zeros((3, 5)))


def test_trigger_reasons():
    kw = {"alpha": 0.01, "min_prompts": 50, "window_start": T}
    assert (
        "too few prompts"
        in prompt_drift_trigger(10, 80, None, None, last_trained_at=None, **kw).reason
    )
    calm = prompt_drift_trigger(80, 80, 0.001, 0.4, last_trained_at=None, **kw)
    assert not calm.fired and "look like the baseline" in calm.reason
    shifted = prompt_drift_trigger(80, 80, 0.05, 0.002, last_trained_at=None, **kw)
    assert shifted.fired and shifted.value == 0.002 and shifted.threshold == 0.01
    acted = prompt_drift_trigger(80, 80, 0.05, 0.002, last_trained_at=T, **kw)
    assert not acted.fired and "already trained" in acted.reason
