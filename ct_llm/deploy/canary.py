"""Canary analysis: compare the live feedback of the canary with production's and decide
promote | rollback | wait. Pure: counts in, decision out, no I/O; deploy/canary_watch.py reads
the store, records the decision and acts on it.

Why a sequential test. The watcher looks again after every batch of feedback and acts on the
first significant result. A fixed-sample z-test checked that way wrongly rolls back (or promotes)
far more often than its nominal 5% (tests/unit/deploy/test_canary_analysis.py measures it). The
mixture sequential probability ratio test (mSPRT; Johari, Pekelis, Walsh, "Always valid
inference: continuous monitoring of A/B tests", 2017) has a likelihood ratio L whose reciprocal
is an always-valid p-value: under "no difference", P(L >= 1/alpha at any look) <= alpha
(Ville's inequality), however often one looks.

The statistic, per metric. An arm's votes are numbers (thumbs: 1 = down, 0 = up; ratings 1..5).
d = mean(canary) - mean(production) is about normal with variance V = s2 * (1/n_c + 1/n_p); in
information time 1/V that is a Brownian motion with drift theta, and mixing its likelihood ratio
over theta ~ N(0, tau2) has the closed form

    L = sqrt(V / (V + tau2)) * exp(tau2 * d^2 / (2 * V * (V + tau2)))

s2 is the variance of both arms' votes pooled, i.e. the variance under H0 ("both arms draw from
one distribution"), as in a score test: H0 is what the false-alarm guarantee is about. One
pseudo-vote at each end of the scale is added to it (as Agresti and Caffo's add-two for
proportions), so 0 thumbs-down out of 40 is not read as zero variance.

tau is given in standard deviations of one vote (`CanaryPolicy.tau`), so one number serves both
metrics; N(0, tau2) is the prior guess of how large a real change is. 0.25 sd is a thumbs-down
rate 10% -> ~17.5%, or a mean rating ~0.3 points lower. Between 0.15 and 0.35 the detection delay
barely moves (10% -> 30% thumbs-down at canary weight 0.1: median 40-50 canary votes, 90th
percentile 70-80); a smaller tau is slower on large effects, a larger one on small effects (the
figures are in the test file). Two metrics share alpha by Bonferroni: alpha / len(metrics) each,
whether or not a metric has votes yet, so the family-wise bound holds whatever arrives later.
Measured false-alarm rate with a look after every 10 canary votes up to 400: 1.4% at alpha 5%
(3.5% at a 1% thumbs-down rate, where the normal approximation is weakest).

The decision. Rollback if any metric is significantly worse on the canary; promote if one is
significantly better and none worse; promote when the canary has `max_samples` votes (or has run
`max_duration_h` with at least `min_samples` votes) with no significant harm, and, where a
non-inferiority margin is set, the always-valid upper bound of the harm is within it; otherwise
wait. The watcher acts at the first crossing and the canary is then gone, so the p-value at the
current counts is what matters; the always-valid p-value proper is its running minimum.

Assumed: votes are independent. A conversation is routed to one arm as a whole and may give many
votes; one that votes a lot makes the variance look smaller than it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ct_llm.feedback.votes import Metric, VoteCounts

Action = Literal["promote", "rollback", "wait"]


class CanaryPolicy(BaseModel):
    """The `deploy.canary:` section of ct-llm.yaml: when a canary's live feedback decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: list[Metric] = ["thumbs_down_rate", "mean_rating"]
    """Metrics compared; alpha is split equally between them (Bonferroni). A tenant whose users
    only send thumbs gets the full alpha on them with `[thumbs_down_rate]`."""
    min_samples: int = Field(30, ge=2)
    """Votes of a metric each arm needs before that metric is tested (the normal approximation
    needs some)."""
    max_samples: int = Field(400, ge=2)
    """Canary votes on `metrics` (thumbs + ratings by default) after which a canary with no
    significant harm is promoted."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Family-wise chance of a wrong significant verdict over all looks, all metrics."""
    tau: float = Field(0.25, gt=0)
    """mSPRT mixture scale, in standard deviations of one vote: the effect size the test is most
    sensitive to (see the module docstring)."""
    max_duration_h: float | None = Field(None, gt=0)
    """After this many hours a canary with at least `min_samples` votes and no significant harm
    is promoted as if it had reached `max_samples` (low-traffic tenants); below `min_samples` it
    keeps waiting and the reason asks an operator. None: no time limit."""
    max_harm_thumbs_down: float | None = Field(None, gt=0, le=1)
    """Non-inferiority margin: promotion without a significant gain also needs the always-valid
    upper bound of (canary - production) thumbs-down rate to be at most this. None: off."""
    max_harm_rating: float | None = Field(None, gt=0, le=4)
    """Non-inferiority margin on the mean rating (points the canary may be lower). None: off."""

    @model_validator(mode="after")
    def _consistent(self) -> CanaryPolicy:
        if not self.metrics or len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics must name thumbs_down_rate and/or mean_rating, once each")
        if self.min_samples > self.max_samples:
            raise ValueError(
                f"min_samples {self.min_samples} exceeds max_samples {self.max_samples}"
            )
        return self


ArmFeedback = VoteCounts
"""The votes one arm (canary or production) received."""


# metric -> (label, +1 when a higher value is worse, lowest and highest possible vote)
_METRICS: dict[str, tuple[str, int, float, float]] = {
    "thumbs_down_rate": ("thumbs-down rate", +1, 0.0, 1.0),
    "mean_rating": ("mean rating", -1, 1.0, 5.0),
}


@dataclass(frozen=True)
class MetricTest:
    """One metric's comparison. `harm` is signed so that > 0 means the canary is worse."""

    metric: str
    n_canary: int
    n_production: int
    canary: float | None
    production: float | None
    harm: float | None
    harm_low: float | None
    """Always-valid (1 - alpha_metric) confidence interval of `harm`."""
    harm_high: float | None
    log_lr: float | None
    """log of the mixture likelihood ratio; significant at >= log(1 / alpha_metric)."""
    p_value: float | None
    verdict: Literal["worse", "better", "no difference", "too few votes"]


def msprt_log_lr(diff: float, var: float, tau2: float) -> float:
    """log L of the normal mSPRT with mixture N(0, tau2), for an estimate `diff` of variance
    `var` (Johari et al. 2017, eq. for the two-sample case)."""
    return 0.5 * math.log(var / (var + tau2)) + tau2 * diff * diff / (2 * var * (var + tau2))


def msprt_half_width(var: float, tau2: float, alpha: float) -> float:
    """Half-width of the always-valid confidence interval: the theta0 with L(theta0) < 1/alpha."""
    return math.sqrt(
        2 * var * (var + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * math.log((var + tau2) / var))
    )


def _pooled_variance(
    canary: tuple[int, float, float], prod: tuple[int, float, float], lo: float, hi: float
) -> float:
    """Variance of both arms' votes together plus a pseudo-vote at `lo` and one at `hi`."""
    n = canary[0] + prod[0] + 2
    total = canary[1] + prod[1] + lo + hi
    total_sq = canary[2] + prod[2] + lo * lo + hi * hi
    return max((total_sq - total * total / n) / (n - 1), 0.0)


def compare_metric(
    metric: Metric, canary: ArmFeedback, production: ArmFeedback, policy: CanaryPolicy
) -> MetricTest:
    """The mSPRT of one metric at the current counts."""
    _, worse_sign, lo, hi = _METRICS[metric]
    c, p = canary.moments(metric), production.moments(metric)
    mean_c = c[1] / c[0] if c[0] else None
    mean_p = p[1] / p[0] if p[0] else None
    if mean_c is None or mean_p is None or min(c[0], p[0]) < policy.min_samples:
        harm = None if mean_c is None or mean_p is None else worse_sign * (mean_c - mean_p)
        return MetricTest(
            metric, c[0], p[0], mean_c, mean_p, harm, None, None, None, None, "too few votes"
        )
    alpha_m = policy.alpha / len(policy.metrics)
    s2 = _pooled_variance(c, p, lo, hi)
    var = s2 * (1 / c[0] + 1 / p[0])
    tau2 = policy.tau**2 * s2
    harm = worse_sign * (mean_c - mean_p)
    log_lr = msprt_log_lr(harm, var, tau2)
    half = msprt_half_width(var, tau2, alpha_m)
    verdict: Literal["worse", "better", "no difference"] = "no difference"
    if log_lr >= math.log(1 / alpha_m):
        verdict = "worse" if harm > 0 else "better"
    p_value = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    return MetricTest(
        metric, c[0], p[0], mean_c, mean_p, harm, harm - half, harm + half, log_lr, p_value, verdict
    )


@dataclass(frozen=True)
class CanaryDecision:
    action: Action
    reasons: list[str]
    """One line a person can read per finding, the deciding one first."""
    metrics: dict[str, Any]
    """Per metric its test (means, harm and its interval, log L, p-value, verdict), plus the vote
    counts and the elapsed hours."""

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reasons": list(self.reasons), "metrics": self.metrics}


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if metric == "thumbs_down_rate" else f"{value:.2f}"


def _describe(t: MetricTest, alpha_m: float) -> str:
    label = _METRICS[t.metric][0]
    figures = (
        f"{label}: canary {_fmt(t.metric, t.canary)} ({t.n_canary} votes) vs production "
        f"{_fmt(t.metric, t.production)} ({t.n_production} votes)"
    )
    if t.verdict == "too few votes":
        return f"{figures}: too few votes to test"
    return (
        f"{figures}: {t.verdict}, always-valid p={t.p_value:.3g} (alpha {alpha_m:.3g}), "
        f"harm in [{t.harm_low:+.3g}, {t.harm_high:+.3g}]"
    )


def _margin(policy: CanaryPolicy, metric: str) -> float | None:
    return policy.max_harm_thumbs_down if metric == "thumbs_down_rate" else policy.max_harm_rating


def _non_inferiority_gaps(tests: list[MetricTest], policy: CanaryPolicy) -> list[str]:
    """Why a no-harm promotion must still wait: margins whose bound is not yet met."""
    gaps = []
    for t in tests:
        margin = _margin(policy, t.metric)
        if margin is None:
            continue
        if t.harm_high is None:
            gaps.append(f"{_METRICS[t.metric][0]}: too few votes to bound its harm by {margin:g}")
        elif t.harm_high > margin:
            gaps.append(
                f"{_METRICS[t.metric][0]}: harm could still be {t.harm_high:+.3g} "
                f"(margin {margin:g}); waiting for more votes"
            )
    return gaps


def decide_canary(
    canary: ArmFeedback,
    production: ArmFeedback,
    policy: CanaryPolicy | None = None,
    *,
    elapsed_h: float | None = None,
) -> CanaryDecision:
    """promote | rollback | wait for a canary, from both arms' votes since it was deployed."""
    policy = policy or CanaryPolicy()
    alpha_m = policy.alpha / len(policy.metrics)
    tests = [compare_metric(m, canary, production, policy) for m in policy.metrics]
    votes = canary.votes(policy.metrics)
    metrics: dict[str, Any] = {
        "canary_votes": votes,
        "production_votes": production.votes(policy.metrics),
        "elapsed_h": elapsed_h,
        "alpha_per_metric": alpha_m,
        **{t.metric: asdict(t) for t in tests},
    }
    lines = [_describe(t, alpha_m) for t in tests]
    significant: tuple[tuple[str, Action], ...] = (("worse", "rollback"), ("better", "promote"))
    for verdict, action in significant:
        if any(t.verdict == verdict for t in tests):
            deciding = [line for t, line in zip(tests, lines, strict=True) if t.verdict == verdict]
            rest = [line for line in lines if line not in deciding]
            return CanaryDecision(action, deciding + rest, metrics)

    tested = any(t.verdict != "too few votes" for t in tests)
    limit_h = policy.max_duration_h
    overdue = elapsed_h is not None and limit_h is not None and elapsed_h >= limit_h
    enough = votes >= policy.max_samples or (overdue and votes >= policy.min_samples)
    progress = f"{votes} of {policy.max_samples} canary votes"
    if enough and tested:
        gaps = _non_inferiority_gaps(tests, policy)
        if not gaps:
            why = "max_samples reached" if votes >= policy.max_samples else "overdue"
            return CanaryDecision(
                "promote", [f"{progress} ({why}) and no significant harm", *lines], metrics
            )
        return CanaryDecision("wait", [f"{progress}; no significant harm", *gaps, *lines], metrics)
    if enough:
        head = f"{progress}, but no metric has {policy.min_samples} votes on both arms yet"
    elif overdue:
        head = (
            f"overdue ({elapsed_h:.1f} h >= max_duration_h {limit_h:g}) with only "
            f"{votes} canary votes (min_samples {policy.min_samples}): promote or roll "
            "back by hand, or raise the canary weight"
        )
    else:
        head = f"{progress}; no significant difference yet"
    return CanaryDecision("wait", [head, *lines], metrics)
