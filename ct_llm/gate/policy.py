"""The promotion gate: a pure function from an eval summary and a policy to promote / reject,
with one readable reason per rule. No I/O, so every rule is unit-tested in milliseconds.

The summary is `EvalResult.summary()` (also what the store keeps for each eval report):

    {"candidate": str, "baseline": str,
     "suites": {name: {"kind": "regression"|"target", "candidate_pass_rate": float,
                       "baseline_pass_rate": float, "n": int}},
     "latency": {"candidate": {"p95_ms": float|None, ...}, "baseline": {...}}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ct_llm.config import GateConfig

# Pass rates are ratios of small integers; compare with a tolerance so that 0.9 - 0.01 computed
# in floating point never rejects a candidate that is exactly at the allowed bound.
_EPS = 1e-9


@dataclass(frozen=True)
class GatePolicy:
    max_regression_drop: float = 0.01
    """A regression suite may lose at most this much pass rate against production."""
    min_target_gain: float = 0.0
    """A target suite must gain at least this much; 0 means 'not worse' is enough."""
    max_latency_ratio: float | None = None
    """If set, candidate p95 latency may be at most this multiple of production's."""

    @classmethod
    def from_config(cls, config: GateConfig) -> GatePolicy:
        # getattr: the latency rule is optional and older configs have no such field.
        return cls(
            max_regression_drop=config.max_regression_drop,
            min_target_gain=config.min_target_gain,
            max_latency_ratio=getattr(config, "max_latency_ratio", None),
        )


@dataclass(frozen=True)
class RuleResult:
    rule: str
    """Which rule: `evidence`, `regression:<suite>`, `target:<suite>`, `latency`."""
    passed: bool
    detail: str
    """One line a person can read: the numbers, the bound and the outcome."""


@dataclass(frozen=True)
class Decision:
    approved: bool
    reasons: list[RuleResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"approved": self.approved, "reasons": [asdict(r) for r in self.reasons]}

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.reasons if not r.passed]


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _suite_rule(name: str, stats: dict[str, Any], policy: GatePolicy) -> RuleResult:
    kind = stats.get("kind")
    n = int(stats.get("n") or 0)
    label = f"{kind}/{name}"
    if n <= 0:
        return RuleResult(f"{kind}:{name}", False, f"{label}: no cases were evaluated -> FAIL")
    cand = float(stats["candidate_pass_rate"])
    base = float(stats["baseline_pass_rate"])
    if kind == "regression":
        ok = cand >= base - policy.max_regression_drop - _EPS
        detail = (
            f"{label}: {cand:.2f} vs production {base:.2f} "
            f"(allowed drop {policy.max_regression_drop:.2f}) -> {_verdict(ok)}"
        )
    elif kind == "target":
        ok = cand >= base + policy.min_target_gain - _EPS
        detail = (
            f"{label}: {cand:.2f} vs production {base:.2f} "
            f"(required gain {policy.min_target_gain:.2f}) -> {_verdict(ok)}"
        )
    else:
        ok = False
        detail = f"{label}: unknown suite kind '{kind}' (expected regression or target) -> FAIL"
    return RuleResult(f"{kind}:{name}", ok, detail)


def _latency_rule(summary: dict[str, Any], limit: float) -> RuleResult:
    latency = summary.get("latency") or {}
    cand = (latency.get("candidate") or {}).get("p95_ms")
    base = (latency.get("baseline") or {}).get("p95_ms")
    if cand is None or base is None or base <= 0:
        return RuleResult(
            "latency",
            False,
            f"latency: p95 not measured for both models (limit {limit:.2f}x) -> FAIL",
        )
    ratio = cand / base
    ok = ratio <= limit + _EPS
    return RuleResult(
        "latency",
        ok,
        f"latency p95: {cand:.0f} ms vs production {base:.0f} ms "
        f"= {ratio:.2f}x (limit {limit:.2f}x) -> {_verdict(ok)}",
    )


def decide_promotion(summary: dict[str, Any], policy: GatePolicy | None = None) -> Decision:
    """Approve only when there is evidence and every rule passes."""
    policy = policy or GatePolicy()
    suites: dict[str, dict[str, Any]] = summary.get("suites") or {}
    reasons: list[RuleResult] = []
    if not suites:
        reasons.append(
            RuleResult(
                "evidence",
                False,
                "no eval suites in the report: nothing shows the candidate is safe; "
                "evaluate it with at least one suite -> FAIL",
            )
        )
    else:
        kinds = sorted({str(s.get("kind")) for s in suites.values()})
        reasons.append(
            RuleResult(
                "evidence", True, f"{len(suites)} suite(s) evaluated ({', '.join(kinds)}) -> pass"
            )
        )
    for name in sorted(suites):
        reasons.append(_suite_rule(name, suites[name], policy))
    if policy.max_latency_ratio is not None:
        reasons.append(_latency_rule(summary, policy.max_latency_ratio))
    return Decision(approved=all(r.passed for r in reasons), reasons=reasons)
