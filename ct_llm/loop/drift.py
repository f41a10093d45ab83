"""Quality drift of the production model: is its recent feedback worse than its own baseline?

Pure: vote counts in, a test result out. loop/signals.py reads the counts from the store and
loop/triggers.py turns the results into the `drift` trigger.

The windows. The recent window is the last `window_h` hours; the baseline is the same model's
feedback before it, from when the model was promoted (at most `baseline_days` back, so an old
baseline neither costs an unbounded read nor describes a user base long gone). Both windows are
the same model, so a difference is a change in the traffic (new kinds of questions, a product
change the model does not know about), which is what retraining on fresh feedback addresses.

The tests, one-sided (only "worse" matters for a trigger):
  - thumbs-down rate: the two-proportion z-test with the pooled rate under H0,
        z = (p_recent - p_base) / sqrt(p (1 - p) (1/n_recent + 1/n_base));
  - mean rating: the z-test of two means with each window's own variance (Welch's statistic;
        with >= `min_votes` ratings per window the normal approximation is fine).
Metrics share alpha by Bonferroni. A test fires only when the change is also at least
`min_increase` / `min_drop` large: with a long baseline and busy traffic a tiny, useless shift
becomes "significant", and retraining for it costs a training run for nothing.

Why a plain z-test, re-checked at every scheduler tick over a sliding window, and not an
always-valid test as in the canary analysis (deploy/canary.py): a false alarm here only starts a
training cycle whose candidate still has to pass the gate and a canary, so it costs compute, not
users; and a sequential test tuned to a false-alarm bound over months reacts much later to a
real drop. The price is measured in tests/unit/loop/test_drift.py, at the defaults with 30
thumbs and 15 ratings an hour and a check every hour: on stationary traffic the trigger fires on
0.16% of the checks, at least once in 29% of 30-day runs (about one false training every three
months per tenant); a thumbs-down rate going 10% -> 20% is detected after a median of 10 hours
(90th percentile 15). Votes are assumed independent (a chatty user's many votes count as many).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal

from ct_llm.feedback.votes import VoteCounts

DriftMetric = Literal["thumbs_down_rate", "mean_rating"]
Verdict = Literal["worse", "no drift", "too few votes"]


@dataclass(frozen=True)
class DriftTest:
    """One metric's comparison. `worsening` is signed so that > 0 means the recent window is
    worse (a higher thumbs-down rate, a lower mean rating); `z` likewise."""

    metric: str
    n_baseline: int
    n_recent: int
    baseline: float | None
    recent: float | None
    worsening: float | None
    z: float | None
    p_value: float | None
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict (a deep copy): this runs at every check.
        return {
            "metric": self.metric,
            "n_baseline": self.n_baseline,
            "n_recent": self.n_recent,
            "baseline": _round(self.baseline),
            "recent": _round(self.recent),
            "worsening": _round(self.worsening),
            "z": _round(self.z),
            "p_value": _round(self.p_value),
            "verdict": self.verdict,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


@functools.lru_cache(maxsize=64)  # called with the same few alphas at every check
def normal_isf(p: float) -> float:
    """The z with P(Z >= z) = p (bisection: exact enough, no scipy in the core)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if normal_sf(mid) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def thumbs_down_drift(
    baseline: VoteCounts, recent: VoteCounts, *, min_votes: int, alpha: float, min_increase: float
) -> DriftTest:
    """One-sided two-proportion z-test: is the recent thumbs-down rate higher?"""
    n_b, n_r = baseline.thumbs, recent.thumbs
    p_b, p_r = baseline.thumbs_down_rate, recent.thumbs_down_rate
    if p_b is None or p_r is None or min(n_b, n_r) < min_votes:
        worse = None if p_b is None or p_r is None else p_r - p_b
        return DriftTest("thumbs_down_rate", n_b, n_r, p_b, p_r, worse, None, None, "too few votes")
    pooled = (baseline.thumbs_down + recent.thumbs_down) / (n_b + n_r)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_b + 1 / n_r))
    diff = p_r - p_b
    # All votes alike (0% or 100% down in both windows): no evidence of any change.
    z = diff / se if se > 0 else 0.0
    p = normal_sf(z)
    verdict: Verdict = "worse" if p <= alpha and diff >= min_increase else "no drift"
    return DriftTest("thumbs_down_rate", n_b, n_r, p_b, p_r, diff, z, p, verdict)


def rating_drift(
    baseline: VoteCounts, recent: VoteCounts, *, min_votes: int, alpha: float, min_drop: float
) -> DriftTest:
    """One-sided z-test of two means (each window's own variance): is the recent mean lower?"""
    n_b, n_r = baseline.ratings, recent.ratings
    m_b, m_r = baseline.mean_rating, recent.mean_rating
    if m_b is None or m_r is None or min(n_b, n_r) < min_votes:
        worse = None if m_b is None or m_r is None else m_b - m_r
        return DriftTest("mean_rating", n_b, n_r, m_b, m_r, worse, None, None, "too few votes")
    var = _variance(baseline) / n_b + _variance(recent) / n_r
    drop = m_b - m_r
    z = drop / math.sqrt(var) if var > 0 else 0.0
    p = normal_sf(z)
    verdict: Verdict = "worse" if p <= alpha and drop >= min_drop else "no drift"
    return DriftTest("mean_rating", n_b, n_r, m_b, m_r, drop, z, p, verdict)


def _variance(c: VoteCounts) -> float:
    """Sample variance of a window's ratings."""
    if c.ratings < 2:
        return 0.0
    return max((c.rating_sum_sq - c.rating_sum**2 / c.ratings) / (c.ratings - 1), 0.0)
