"""The pass-rate rules of the gate, decided per case and with their uncertainty.

Both models answer the same cases, so the comparison is paired: what matters is the discordant
cases (lost: production passed and the candidate failed; gained: the reverse). Under "no
difference" each discordant case is a fair coin, which gives an exact one-sided McNemar test;
Newcombe's interval bounds the difference in pass rate. A suite that must not get worse
(regression, safety) fails when the candidate is significantly worse at the policy's `alpha`, or
when its observed drop exceeds what the policy accepts; a target suite fails when it is
significantly worse or gains less than required (and, with
`require_significant_target_gain`, when the gain is not significant).

Cases whose outcome changed when the eval asked them again (flaky: batch composition on a bf16
server, or the fast path disagreeing with the served one) are left out of the counts, listed in
the detail, and limited: above `max_flaky_share` the suite cannot decide and fails.

Each rule states its power: the smallest drop (in cases) it would catch with 80% probability
given the suite's size, production's pass count and the noise seen (the gains).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING

from ct_llm.gate.types import RuleResult, SuiteScore, verdict
from ct_llm.stats import (
    PairedCounts,
    detectable_drop,
    mcnemar_worse_p,
    paired_difference_interval,
)

if TYPE_CHECKING:
    from ct_llm.gate.policy import GatePolicy

# Pass rates are ratios of small integers; compare with a tolerance so that a drop exactly at
# the allowed bound is never rejected by floating point.
EPS = 1e-9
POWER = 0.8

# suite kind -> (policy field for the allowed change, sign, wording). A target suite must gain
# `min_target_gain`; regression and safety suites may lose at most their allowed drop.
SUITE_RULES = {
    "target": ("min_target_gain", +1, "required gain"),
    "regression": ("max_regression_drop", -1, "allowed drop"),
    "safety": ("max_safety_drop", -1, "allowed drop"),
}


def _z(alpha: float) -> float:
    """Normal quantile for a (1 - 2 alpha) two-sided interval, matching a one-sided test."""
    return NormalDist().inv_cdf(1 - alpha)


def rejects_drop(lost: int, gained: int, n: int, allowed: float, alpha: float) -> bool:
    """The must-not-get-worse rule on one paired table: significantly worse, or a drop beyond
    the allowance."""
    if n <= 0:
        return True
    drop = (lost - gained) / n
    return mcnemar_worse_p(lost, gained) < alpha or drop > allowed + EPS


def power_sentence(t: PairedCounts, allowed: float, alpha: float) -> str:
    """ "a drop of k cases (x points) would be caught with 80% probability", for this suite."""
    passing, failing = t.both + t.lost, t.gained + t.neither
    if passing == 0:
        return "production passes no case: no drop can be shown"
    noise = t.gained / failing if failing else 0.0
    noise = min(noise, 0.5)
    k = detectable_drop(
        passing,
        failing,
        noise,
        lambda lost, gained: rejects_drop(lost, gained, t.n, allowed, alpha),
    )
    if k is None:
        return "no drop would be caught with 80% probability"
    return f"a drop of {k} case(s) ({k / t.n:.1%}) would be caught with 80% probability"


def suite_rule(name: str, cand: SuiteScore, prod: SuiteScore | None, p: GatePolicy) -> RuleResult:
    rule, label = f"{cand.kind}:{name}", f"{cand.kind}/{name}"
    if cand.n <= 0:
        return RuleResult(rule, False, f"{label}: no cases were evaluated -> FAIL")
    if cand.kind not in SUITE_RULES:
        return RuleResult(rule, False, f"{label}: unknown suite kind '{cand.kind}' -> FAIL")
    if prod is None:
        return RuleResult(rule, False, f"{label}: production was not evaluated on it -> FAIL")
    key, sign, wording = SUITE_RULES[cand.kind]
    allowed = float(getattr(p, key))
    t = cand.paired or _unpaired(cand, prod)
    total = t.n + cand.flaky
    flaky = f"; {cand.flaky} flaky case(s) left out" if cand.flaky else ""
    if total and cand.flaky / total > p.max_flaky_share + EPS:
        return RuleResult(
            rule,
            False,
            f"{label}: {cand.flaky} of {total} cases changed outcome when asked again "
            f"(allowed share {p.max_flaky_share:.2f}): too noisy to decide -> FAIL",
        )
    low, high = paired_difference_interval(t, _z(p.alpha))
    p_worse = mcnemar_worse_p(t.lost, t.gained)
    diff = t.difference
    head = (
        f"{label}: {cand.pass_rate:.2f} vs production {prod.pass_rate:.2f}; "
        f"{t.gained} gained, {t.lost} lost of {t.n}, difference {diff:+.3f} "
        f"[{low:+.3f}, {high:+.3f}] ({1 - 2 * p.alpha:.0%} interval), "
        f"p(worse) = {p_worse:.3g}{flaky}"
    )
    significantly_worse = p_worse < p.alpha
    if sign < 0:
        ok = not rejects_drop(t.lost, t.gained, t.n, allowed, p.alpha)
        why = "significantly worse" if significantly_worse else f"{wording} {allowed:.2f}"
        power = power_sentence(t, allowed, p.alpha)
        return RuleResult(rule, ok, f"{head}; {why}; {power} -> {verdict(ok)}")
    gain_ok = diff >= allowed - EPS
    significant_gain = mcnemar_worse_p(t.gained, t.lost) < p.alpha
    ok = gain_ok and not significantly_worse
    why = f"{wording} {allowed:.2f}"
    if p.require_significant_target_gain:
        ok = ok and significant_gain
        why += ", significant at alpha " + f"{p.alpha:g}"
    if significantly_worse:
        why = "significantly worse"
    return RuleResult(rule, ok, f"{head}; {why} -> {verdict(ok)}")


def _unpaired(cand: SuiteScore, prod: SuiteScore) -> PairedCounts:
    """A summary stored before per-case outcomes were kept: the table with the fewest
    discordant cases that matches the two pass rates (the most lenient reading, as before)."""
    n = cand.n
    c_pass, p_pass = round(cand.pass_rate * n), round(prod.pass_rate * n)
    gained, lost = max(0, c_pass - p_pass), max(0, p_pass - c_pass)
    both = min(c_pass, p_pass)
    return PairedCounts(both=both, gained=gained, lost=lost, neither=n - both - gained - lost)
