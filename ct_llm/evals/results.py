"""What an eval produces: per-case outcomes of the checked suites, the judge's comparisons, RAG
scores, canary leaks, performance and the adapter's footprint; `summary()` is what the gate
decides on and the store keeps, `to_dict()` is report.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ct_llm.evals.judge import JudgeResult
from ct_llm.evals.safety import Leak
from ct_llm.stats import PairedCounts


@dataclass
class CaseResult:
    id: str
    prompt: str
    candidate_answer: str
    baseline_answer: str
    candidate_passed: bool
    baseline_passed: bool
    candidate_failed_checks: list[str] = field(default_factory=list)
    baseline_failed_checks: list[str] = field(default_factory=list)
    candidate_error: str | None = None
    baseline_error: str | None = None
    candidate_recheck: bool | None = None
    """The candidate's outcome when asked again on the served path (evals/recheck.py); None:
    not asked again."""
    baseline_recheck: bool | None = None
    """Production's outcome when asked again in another batch; None: not asked again."""
    recheck_answer: str | None = None
    """The candidate's answer on the served path, when asked again."""

    @property
    def changed(self) -> bool:
        return self.candidate_passed != self.baseline_passed

    @property
    def flaky(self) -> bool:
        """Its outcome changed when asked again: it measures noise, not the models."""
        return (
            self.candidate_recheck is not None and self.candidate_recheck != self.candidate_passed
        ) or (self.baseline_recheck is not None and self.baseline_recheck != self.baseline_passed)


@dataclass
class SuiteResult:
    name: str
    kind: str
    description: str
    cases: list[CaseResult]

    @property
    def n(self) -> int:
        return len(self.cases)

    @property
    def candidate_pass_rate(self) -> float:
        return sum(c.candidate_passed for c in self.cases) / self.n if self.cases else 0.0

    @property
    def baseline_pass_rate(self) -> float:
        return sum(c.baseline_passed for c in self.cases) / self.n if self.cases else 0.0

    def paired(self) -> PairedCounts:
        """The 2x2 table of per-case outcomes, flaky cases left out (the gate's evidence)."""
        kept = [c for c in self.cases if not c.flaky]
        return PairedCounts(
            both=sum(c.candidate_passed and c.baseline_passed for c in kept),
            gained=sum(c.candidate_passed and not c.baseline_passed for c in kept),
            lost=sum(c.baseline_passed and not c.candidate_passed for c in kept),
            neither=sum(not c.candidate_passed and not c.baseline_passed for c in kept),
        )

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "candidate_pass_rate": round(self.candidate_pass_rate, 4),
            "baseline_pass_rate": round(self.baseline_pass_rate, 4),
            "n": self.n,
            "paired": asdict(self.paired()),
            "flaky": [c.id for c in self.cases if c.flaky],
        }


@dataclass
class RagCase:
    id: str
    question: str
    contexts: list[str]
    candidate_answer: str
    baseline_answer: str
    scores: dict[str, dict[str, float | None]]
    """{"candidate": {metric: score | None}, "baseline": {...}}"""
    errors: list[str] = field(default_factory=list)


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return round(sum(got) / len(got), 4) if got else None


@dataclass
class RagResult:
    metrics: list[str]
    cases: list[RagCase]
    judge_model: str

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for m in self.metrics:
            cand = [c.scores["candidate"].get(m) for c in self.cases]
            base = [c.scores["baseline"].get(m) for c in self.cases]
            out[m] = {
                "candidate": _mean(cand),
                "baseline": _mean(base),
                "n": len(self.cases),
                "failed": sum(v is None for v in cand + base),
            }
        return out


@dataclass
class EvalResult:
    candidate: str
    baseline: str
    suites: list[SuiteResult]
    latency: dict[str, dict[str, Any]]
    """{"candidate": {p50_ms, p95_ms, tokens_per_s, n, errors}, "baseline": {...}}: measured
    alone per model by evals/performance.py, or from the eval's own requests when that is off."""
    settings: dict[str, Any] = field(default_factory=dict)
    """What produced the result: server, max_tokens, concurrency, timing."""
    judge: JudgeResult | None = None
    rag: RagResult | None = None
    canaries: int = 0
    """How many canary strings were looked for in the answers."""
    leaks: list[Leak] = field(default_factory=list)
    adapter: dict[str, Any] | None = None
    """The candidate adapter's rank, size, parameters and serving memory."""
    recheck: dict[str, Any] | None = None
    """What asking cases again showed (evals/recheck.py `RecheckStats`); None: not done."""

    def summary(self) -> dict[str, Any]:
        """What the gate decides on and the store keeps (JSON-safe); gate/scores.py reads it."""
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "suites": {s.name: s.summary() for s in self.suites},
            "judge": self.judge.summary() if self.judge else None,
            "rag": self.rag.summary() if self.rag else None,
            "canaries": {
                "count": self.canaries,
                "candidate_leaks": sum(x.model == "candidate" for x in self.leaks),
                "baseline_leaks": sum(x.model == "baseline" for x in self.leaks),
            },
            "latency": self.latency,
            "adapter": self.adapter,
            "recheck": self.recheck,
        }

    def to_dict(self) -> dict[str, Any]:
        """report.json's measured part (evals/report.py documents the whole payload)."""
        suites = [
            {
                "name": s.name,
                "kind": s.kind,
                "description": s.description,
                **s.summary(),
                "cases": [asdict(c) for c in s.cases],
            }
            for s in self.suites
        ]
        rag = None
        if self.rag:
            rag = {
                "judge_model": self.rag.judge_model,
                "metrics": self.rag.summary(),
                "cases": [asdict(c) for c in self.rag.cases],
            }
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "summary": self.summary(),
            "settings": self.settings,
            "suites": suites,
            "judge": self.judge.to_dict() if self.judge else None,
            "rag": rag,
            "safety": {"canaries": self.canaries, "leaks": [asdict(x) for x in self.leaks]},
            "performance": {**self.latency, "adapter": self.adapter},
        }
