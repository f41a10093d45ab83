"""The statistics the loop decides with: intervals, exact paired tests, power and a seeded
bootstrap. Pure Python (no numpy, no scipy), deterministic: the same data give the same numbers,
so a decision taken from them is reproducible.

Used by the gate (paired pass-rate rules, the latency rule), the judge's win rate and the eval
phases that measure until a question is decided.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default); (0, 1) without data. Unlike the
    normal approximation it stays inside [0, 1] and is honest for small n and rates near 0 or 1."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@lru_cache(maxsize=65536)
def binomial_upper_tail(k: int, n: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def mcnemar_worse_p(lost: int, gained: int) -> float:
    """Exact one-sided McNemar p-value for "the candidate is worse": of the discordant cases
    (lost: production passed, the candidate failed; gained: the reverse), under no difference
    each is a fair coin, so p = P(X >= lost) with X ~ Binomial(lost + gained, 1/2)."""
    return binomial_upper_tail(lost, lost + gained)


@dataclass(frozen=True)
class PairedCounts:
    """Per-case outcomes of two models on one suite, as a 2x2 table."""

    both: int
    """Cases both models pass."""
    gained: int
    """The candidate passes, production fails."""
    lost: int
    """Production passes, the candidate fails."""
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.gained + self.lost + self.neither

    @property
    def difference(self) -> float:
        """Candidate pass rate minus production's."""
        return (self.gained - self.lost) / self.n if self.n else 0.0


def paired_difference_interval(t: PairedCounts, z: float = 1.96) -> tuple[float, float]:
    """Interval on the difference of two paired proportions (candidate minus production):
    Newcombe's hybrid score method (method 10, Statistics in Medicine 1998), built from the two
    Wilson intervals and the phi correlation of the table. Honest at small counts and at 0 / 1."""
    n = t.n
    if n == 0:
        return -1.0, 1.0
    p1 = (t.both + t.gained) / n  # candidate
    p2 = (t.both + t.lost) / n  # production
    l1, u1 = wilson_interval(t.both + t.gained, n, z)
    l2, u2 = wilson_interval(t.both + t.lost, n, z)
    denom = (t.both + t.gained) * (t.lost + t.neither) * (t.both + t.lost) * (t.gained + t.neither)
    phi = 0.0
    if denom > 0:
        num = t.both * t.neither - t.gained * t.lost
        # Newcombe's continuity-corrected phi: shrink a positive correlation by n/2.
        if num > 0:
            num = max(num - n / 2, 0.0)
        phi = num / math.sqrt(denom)
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(
        max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    )
    return max(-1.0, low), min(1.0, high)


def _binomial_pmf(n: int, p: float) -> list[float]:
    if p <= 0:
        return [1.0] + [0.0] * n
    if p >= 1:
        return [0.0] * n + [1.0]
    return [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]


def detectable_drop(
    passing: int,
    failing: int,
    noise_rate: float,
    rejects: Callable[[int, int], bool],
    power: float = 0.8,
) -> int | None:
    """The smallest number of lost cases that a rule catches with probability >= `power`.

    Model: production passes `passing` cases and fails `failing`; noise gains each failing
    case with probability `noise_rate`, and loses as many passing cases as it gains on average
    (noise has no direction); on top of that the candidate really loses k cases. Lost ~
    Binomial(passing, (k + noise losses) / passing), gained ~ Binomial(failing, noise_rate);
    `rejects(lost, gained)` is the rule. Exact enumeration; None when even losing every passing
    case would not be caught."""
    gain_pmf = _binomial_pmf(failing, noise_rate)
    noise_losses = noise_rate * failing
    for k in range(1, passing + 1):
        q = min(1.0, (k + noise_losses) / passing)
        lost_pmf = _binomial_pmf(passing, q)
        caught = 0.0
        for lost, pl in enumerate(lost_pmf):
            if pl < 1e-12:
                continue
            for gained, pg in enumerate(gain_pmf):
                if pg >= 1e-12 and rejects(lost, gained):
                    caught += pl * pg
        if caught >= power:
            return k
    return None


@dataclass(frozen=True)
class BootstrapInterval:
    """A statistic of one or two samples with its percentile-bootstrap interval."""

    value: float
    low: float
    high: float
    resamples: int


def _resample(rng: random.Random, xs: list[float]) -> list[float]:
    return [xs[rng.randrange(len(xs))] for _ in xs]


def _interval(
    value: float, draws: list[float], confidence: float, resamples: int
) -> BootstrapInterval:
    tail = (1 - confidence) / 2 * 100
    low, high = percentile(draws, tail), percentile(draws, 100 - tail)
    return BootstrapInterval(
        value, value if low is None else low, value if high is None else high, resamples
    )


def bootstrap_percentile(
    sample: Sequence[float],
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> BootstrapInterval | None:
    """Percentile-bootstrap interval on percentile_q(sample); seeded, so the same data give the
    same interval. None for an empty sample."""
    point = percentile(sample, q)
    if point is None:
        return None
    rng, xs = random.Random(seed), list(sample)
    draws = [percentile(_resample(rng, xs), q) or 0.0 for _ in range(resamples)]
    return _interval(point, draws, confidence, resamples)


def bootstrap_ratio_by_round(
    numerator_rounds: Sequence[Sequence[float]],
    denominator_rounds: Sequence[Sequence[float]],
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> BootstrapInterval | None:
    """Interval on percentile_q(all numerator samples) / percentile_q(all denominator samples)
    for two models measured in paired rounds (round i of each on the same stretch of time), by
    a cluster bootstrap: whole rounds are resampled, each with both models' samples.

    Requests of one round share the machine's state at that moment (another job, a GC pause,
    frequency scaling), so they are not independent draws: resampling requests treats a slow
    spell that hit one model's round as evidence about the model and gives an interval far too
    narrow. Resampling rounds widens the interval by exactly that spell's weight. Seeded. None
    when the rounds do not pair up (different counts, fewer than 2) or a percentile is missing.
    """
    if len(numerator_rounds) != len(denominator_rounds) or len(numerator_rounds) < 2:
        return None
    flat_num = [x for r in numerator_rounds for x in r]
    flat_den = [x for r in denominator_rounds for x in r]
    point_num, point_den = percentile(flat_num, q), percentile(flat_den, q)
    if point_num is None or not point_den or point_den <= 0:
        return None
    rng, n, draws = random.Random(seed), len(numerator_rounds), []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        a = percentile([x for i in picks for x in numerator_rounds[i]], q)
        b = percentile([x for i in picks for x in denominator_rounds[i]], q)
        if a is not None and b:
            draws.append(a / b)
    return _interval(point_num / point_den, draws, confidence, resamples)


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> BootstrapInterval | None:
    """Percentile-bootstrap interval on percentile_q(numerator) / percentile_q(denominator),
    resampling each sample independently (two models measured apart). Seeded. None when either
    sample is empty or the denominator's percentile is not positive."""
    point_num, point_den = percentile(numerator, q), percentile(denominator, q)
    if point_num is None or not point_den or point_den <= 0:
        return None
    rng, num, den = random.Random(seed), list(numerator), list(denominator)
    draws = []
    for _ in range(resamples):
        a, b = percentile(_resample(rng, num), q), percentile(_resample(rng, den), q)
        if a is not None and b:
            draws.append(a / b)
    return _interval(point_num / point_den, draws, confidence, resamples)
