"""What the gate decides on and what it answers: plain frozen data, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ct_llm.stats import PairedCounts


@dataclass(frozen=True)
class SuiteScore:
    kind: str
    pass_rate: float
    n: int
    paired: PairedCounts | None = None
    """Per-case outcomes against production, flaky cases left out; None in summaries stored
    before they were kept (the rule then reads the two pass rates)."""
    flaky: int = 0
    """Cases whose outcome changed when asked again: left out of `paired`."""


@dataclass(frozen=True)
class JudgeScore:
    """The candidate's win rate against production from the pairwise judge."""

    rate: float
    low: float
    high: float
    n: int
    unparseable: int


@dataclass(frozen=True)
class AdapterFacts:
    rank: int | None
    size_bytes: int | None


@dataclass(frozen=True)
class LatencySamples:
    """Request latencies of the candidate and of what it is compared with, measured apart on
    the same server in alternating rounds (evals/performance.py)."""

    candidate_ms: tuple[float, ...]
    reference_ms: tuple[float, ...]
    reference: str
    """What the candidate was measured against: the production adapter, or a reference adapter
    of the candidate's own shape when production is the base model."""
    rounds: int = 0
    candidate_rounds: tuple[tuple[float, ...], ...] = ()
    """The same latencies by round (empty in reports written before rounds were kept)."""
    reference_rounds: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def from_rounds(
        cls,
        candidate: Sequence[Sequence[float]],
        reference: Sequence[Sequence[float]],
        label: str,
    ) -> LatencySamples:
        cand = tuple(tuple(float(x) for x in r) for r in candidate)
        ref = tuple(tuple(float(x) for x in r) for r in reference)
        return cls(
            candidate_ms=tuple(x for r in cand for x in r),
            reference_ms=tuple(x for r in ref for x in r),
            reference=label,
            rounds=len(cand),
            candidate_rounds=cand,
            reference_rounds=ref,
        )


@dataclass(frozen=True)
class RecheckFacts:
    """What asking cases again showed (evals/recheck.py)."""

    discordant: int
    discordant_changed: int
    sampled: int
    sampled_changed: int


@dataclass(frozen=True)
class ModelScores:
    """What the eval measured for one model (the candidate, or production)."""

    name: str
    suites: dict[str, SuiteScore] = field(default_factory=dict)
    latency_p95_ms: float | None = None
    canary_leaks: int | None = None
    """None: no canaries were checked."""
    rag: dict[str, float | None] = field(default_factory=dict)
    judge: JudgeScore | None = None
    """Only on the candidate: its win rate against production."""
    adapter: AdapterFacts | None = None
    latency: LatencySamples | None = None
    """Only on the candidate: the raw samples the latency rule decides on."""
    recheck: RecheckFacts | None = None
    """Only on the candidate: None when no case was asked again."""


@dataclass(frozen=True)
class RuleResult:
    rule: str
    """Which rule: `evidence`, `regression:<suite>`, `judge`, `latency`, ..."""
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


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"
