"""Turn a stored eval summary (`EvalResult.summary()`, kept with every eval report) into the
candidate's and production's `ModelScores` the gate decides on. Pure: plain dicts in, dataclasses
out. Summaries written before the judge / safety / RAG suites existed still read (their missing
parts are simply absent)."""

from __future__ import annotations

from typing import Any

from ct_llm.gate.types import (
    AdapterFacts,
    JudgeScore,
    LatencySamples,
    ModelScores,
    RecheckFacts,
    SuiteScore,
)
from ct_llm.stats import PairedCounts


def _paired(s: dict[str, Any]) -> PairedCounts | None:
    t = s.get("paired")
    keys = ("both", "gained", "lost", "neither")
    if not isinstance(t, dict) or not all(isinstance(t.get(k), int) for k in keys):
        return None  # a summary without usable per-case counts: the rule reads the pass rates
    return PairedCounts(*(t[k] for k in keys))


def _suites(summary: dict[str, Any], key: str, paired: bool) -> dict[str, SuiteScore]:
    return {
        name: SuiteScore(
            str(s.get("kind")),
            float(s.get(key) or 0.0),
            int(s.get("n") or 0),
            paired=_paired(s) if paired else None,
            flaky=len(s.get("flaky") or []) if paired else 0,
        )
        for name, s in (summary.get("suites") or {}).items()
    }


def _recheck(summary: dict[str, Any]) -> RecheckFacts | None:
    r = summary.get("recheck")
    if not isinstance(r, dict):
        return None
    return RecheckFacts(
        discordant=int(r.get("discordant", 0)),
        discordant_changed=int(r.get("discordant_changed", 0)),
        sampled=int(r.get("sampled", 0)),
        sampled_changed=int(r.get("sampled_changed", 0)),
    )


def _latency_samples(summary: dict[str, Any]) -> LatencySamples | None:
    lat = summary.get("latency") or {}
    cand = (lat.get("candidate") or {}).get("samples_ms")
    ref = (lat.get("baseline") or {}).get("samples_ms")
    if cand is None or ref is None:
        return None
    cand_rounds = (lat.get("candidate") or {}).get("rounds_ms")
    ref_rounds = (lat.get("baseline") or {}).get("rounds_ms")
    label = str(lat.get("reference") or "production")
    if cand_rounds and ref_rounds:
        return LatencySamples.from_rounds(cand_rounds, ref_rounds, label)
    return LatencySamples(
        candidate_ms=tuple(float(x) for x in cand),
        reference_ms=tuple(float(x) for x in ref),
        reference=str(lat.get("reference") or "production"),
        # measure_performance records the rounds with each model's figures.
        rounds=int((lat.get("candidate") or {}).get("rounds") or 0),
    )


def _p95(summary: dict[str, Any], role: str) -> float | None:
    value = ((summary.get("latency") or {}).get(role) or {}).get("p95_ms")
    return None if value is None else float(value)


def _judge(summary: dict[str, Any]) -> JudgeScore | None:
    j = summary.get("judge")
    if not j:
        return None
    return JudgeScore(
        rate=float(j["rate"]),
        low=float(j["low"]),
        high=float(j["high"]),
        n=int(j["n"]),
        unparseable=int(j.get("unparseable", 0)),
    )


def _rag(summary: dict[str, Any], role: str) -> dict[str, float | None]:
    metrics = summary.get("rag") or {}
    return {m: (v.get(role) if isinstance(v, dict) else None) for m, v in metrics.items()}


def _leaks(summary: dict[str, Any], role: str) -> int | None:
    canaries = summary.get("canaries")
    if not canaries or not canaries.get("count"):
        return None
    return int(canaries.get(f"{role}_leaks", 0))


def _adapter(summary: dict[str, Any]) -> AdapterFacts | None:
    a = summary.get("adapter")
    if not a:
        return None
    return AdapterFacts(rank=a.get("rank"), size_bytes=a.get("size_bytes"))


def scores_from_summary(summary: dict[str, Any]) -> tuple[ModelScores, ModelScores]:
    """(candidate, production) scores from one eval summary."""
    candidate = ModelScores(
        name=str(summary.get("candidate", "candidate")),
        suites=_suites(summary, "candidate_pass_rate", paired=True),
        latency_p95_ms=_p95(summary, "candidate"),
        latency=_latency_samples(summary),
        recheck=_recheck(summary),
        canary_leaks=_leaks(summary, "candidate"),
        rag=_rag(summary, "candidate"),
        judge=_judge(summary),
        adapter=_adapter(summary),
    )
    production = ModelScores(
        name=str(summary.get("baseline", "production")),
        suites=_suites(summary, "baseline_pass_rate", paired=False),
        latency_p95_ms=_p95(summary, "baseline"),
        canary_leaks=_leaks(summary, "baseline"),
        rag=_rag(summary, "baseline"),
    )
    return candidate, production
