"""The promotion gate's rules: pure functions over the two models' scores."""

from __future__ import annotations

from typing import Any

import pytest

from ct_llm.config import GateConfig, WorkspaceConfig
from ct_llm.gate.policy import GatePolicy, decide_promotion
from ct_llm.gate.scores import scores_from_summary

# Only the suite rules unless a test switches more on.
SUITES_ONLY = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=None)


def summary(
    suites: dict[str, tuple[str, float, float]],
    p95: tuple[float | None, float | None] = (100.0, 100.0),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "candidate": "t-assistant-v2",
        "baseline": "t-assistant-v1",
        "suites": {
            name: {"kind": kind, "candidate_pass_rate": c, "baseline_pass_rate": b, "n": 20}
            for name, (kind, c, b) in suites.items()
        },
        "latency": {
            "candidate": {"p50_ms": 50.0, "p95_ms": p95[0]},
            "baseline": {"p50_ms": 50.0, "p95_ms": p95[1]},
        },
        **extra,
    }


def decide(s: dict[str, Any], policy: GatePolicy = SUITES_ONLY, **kw: Any):  # type: ignore[no-untyped-def]
    cand, prod = scores_from_summary(s)
    return decide_promotion(cand, prod, policy, **kw)


def judge(rate: float, low: float, high: float, n: int = 40, unparseable: int = 0) -> dict:
    return {"rate": rate, "low": low, "high": high, "n": n, "unparseable": unparseable}


def test_approves_when_target_improves_and_regression_holds() -> None:
    d = decide(summary({"general": ("regression", 0.9, 0.9), "shop-returns": ("target", 0.8, 0.2)}))
    assert d.approved
    assert [r.rule for r in d.reasons] == ["evidence", "regression:general", "target:shop-returns"]
    assert all(r.passed for r in d.reasons)
    general = d.reasons[1].detail
    assert general == "regression/general: 0.90 vs production 0.90 (allowed drop 0.01) -> pass"
    assert d.to_dict()["reasons"][2] == {
        "rule": "target:shop-returns",
        "passed": True,
        "detail": d.reasons[2].detail,
    }


def test_rejects_a_regression_drop_beyond_the_allowance() -> None:
    d = decide(
        summary({"general": ("regression", 0.85, 0.9), "shop-returns": ("target", 1.0, 0.2)})
    )
    assert not d.approved
    assert [r.rule for r in d.failed] == ["regression:general"]
    assert "0.85 vs production 0.90" in d.failed[0].detail and "FAIL" in d.failed[0].detail


def test_regression_may_lose_one_point_by_default() -> None:
    assert decide(summary({"general": ("regression", 0.89, 0.90)})).approved
    assert not decide(summary({"general": ("regression", 0.88, 0.90)})).approved


def test_a_drop_exactly_at_the_allowance_passes() -> None:
    # 0.8 - 0.1 in floating point is 0.7000000000000001 > 0.7: the tolerance keeps it a pass.
    policy = SUITES_ONLY.model_copy(update={"max_regression_drop": 0.1})
    assert decide(summary({"general": ("regression", 0.7, 0.8)}), policy).approved


def test_target_gain_rules() -> None:
    equal = summary({"shop-returns": ("target", 0.5, 0.5)})
    assert decide(equal).approved
    d = decide(equal, SUITES_ONLY.model_copy(update={"min_target_gain": 0.1}))
    assert not d.approved and d.failed[0].rule == "target:shop-returns"
    assert "required gain 0.10" in d.failed[0].detail
    assert not decide(summary({"shop-returns": ("target", 0.4, 0.5)})).approved


def test_safety_refusal_rate_may_not_drop() -> None:
    assert decide(summary({"harmful": ("safety", 0.8, 0.8)})).approved
    d = decide(summary({"harmful": ("safety", 0.75, 0.8)}))
    assert [r.rule for r in d.failed] == ["safety:harmful"]
    lenient = SUITES_ONLY.model_copy(update={"max_safety_drop": 0.05})
    assert decide(summary({"harmful": ("safety", 0.75, 0.8)}), lenient).approved


def test_one_canary_leak_rejects() -> None:
    clean = summary({"g": ("regression", 1, 1)}, canaries={"count": 4, "candidate_leaks": 0})
    d = decide(clean)
    assert d.approved and "canaries" in [r.rule for r in d.reasons]
    leaky = summary(
        {"g": ("regression", 1, 1)},
        canaries={"count": 4, "candidate_leaks": 1, "baseline_leaks": 0},
    )
    d = decide(leaky)
    assert [r.rule for r in d.failed] == ["canaries"]
    assert "1 answer(s)" in d.failed[0].detail
    # No canaries configured: no rule, nothing to claim.
    none = summary({"g": ("regression", 1, 1)}, canaries={"count": 0, "candidate_leaks": 0})
    assert "canaries" not in [r.rule for r in decide(none).reasons]


@pytest.mark.parametrize(
    ("result", "approved", "words"),
    [
        (judge(0.70, 0.55, 0.82), True, "lower bound must be >= 0.50 -> pass"),
        (judge(0.60, 0.45, 0.74), False, "[0.45, 0.74]"),
        (judge(0.50, 0.40, 0.60, n=10, unparseable=30), False, "30 of 40 verdicts unreadable"),
        (judge(0.5, 0.0, 1.0, n=0, unparseable=0), False, "no evidence"),
        (None, False, "no pairwise judge result"),
    ],
)
def test_judge_lower_bound_rule(result: dict | None, approved: bool, words: str) -> None:
    policy = GatePolicy(max_latency_ratio=None)  # default judge bound 0.5
    d = decide(summary({"g": ("regression", 1, 1)}, judge=result), policy)
    assert d.approved is approved
    rule = next(r for r in d.reasons if r.rule == "judge")
    assert words in rule.detail


def test_rag_metrics_may_drop_a_little() -> None:
    rag = {
        "faithfulness": {"candidate": 0.70, "baseline": 0.74, "n": 6},
        "answer_relevancy": {"candidate": 0.50, "baseline": 0.60, "n": 6},
    }
    d = decide(summary({"g": ("regression", 1, 1)}, rag=rag))
    assert [r.rule for r in d.failed] == ["rag:answer_relevancy"]
    unscored = {"faithfulness": {"candidate": None, "baseline": 0.7, "n": 6}}
    d = decide(summary({"g": ("regression", 1, 1)}, rag=unscored))
    assert [r.rule for r in d.failed] == ["rag:faithfulness"]


def test_latency_rule() -> None:
    slow = summary({"general": ("regression", 1.0, 1.0)}, p95=(300.0, 100.0))
    assert decide(slow).approved  # rule off
    d = decide(slow, SUITES_ONLY.model_copy(update={"max_latency_ratio": 2.0}))
    assert not d.approved and d.failed[0].rule == "latency" and "3.00x" in d.failed[0].detail
    assert decide(slow, SUITES_ONLY.model_copy(update={"max_latency_ratio": 3.5})).approved
    default = GatePolicy(min_judge_lower_bound=None)
    assert decide(summary({"g": ("regression", 1, 1)}, p95=(110.0, 100.0)), default).approved
    assert not decide(summary({"g": ("regression", 1, 1)}, p95=(112.0, 100.0)), default).approved
    unmeasured = summary({"general": ("regression", 1.0, 1.0)}, p95=(None, 100.0))
    assert not decide(unmeasured, default).approved


def test_adapter_rank_and_size_limits() -> None:
    facts = {"rank": 32, "size_bytes": 20_000_000}
    d = decide(summary({"g": ("regression", 1, 1)}, adapter=facts), serving_max_rank=16)
    assert [r.rule for r in d.failed] == ["adapter"] and "rank 32 (limit 16)" in d.failed[0].detail
    assert decide(summary({"g": ("regression", 1, 1)}, adapter=facts), serving_max_rank=64).approved
    small = SUITES_ONLY.model_copy(update={"max_adapter_mb": 10.0})
    d = decide(summary({"g": ("regression", 1, 1)}, adapter=facts), small, serving_max_rank=64)
    assert not d.approved and "20.0 MB (limit 10 MB)" in d.failed[0].detail


@pytest.mark.parametrize("suites", [{}, None])
def test_no_suites_is_no_evidence_and_rejected(suites: dict[str, Any] | None) -> None:
    d = decide({"candidate": "a", "baseline": "b", "suites": suites})
    assert not d.approved
    assert d.failed[0].rule == "evidence"


def test_suite_with_no_cases_or_unknown_kind_fails() -> None:
    s = summary({"general": ("regression", 0.0, 0.0), "odd": ("smoke", 1.0, 0.0)})
    s["suites"]["general"]["n"] = 0
    d = decide(s)
    assert sorted(r.rule for r in d.failed) == ["regression:general", "smoke:odd"]


def test_old_summaries_without_new_parts_still_decide() -> None:
    """Reports stored before the judge/safety/RAG suites existed have none of those keys."""
    old = summary({"general": ("regression", 1.0, 1.0)})
    cand, prod = scores_from_summary(old)
    assert cand.judge is None and cand.canary_leaks is None and cand.rag == {}
    assert decide(old).approved


def test_the_gate_section_is_the_policy_and_rejects_unknown_keys() -> None:
    assert GateConfig is GatePolicy
    cfg = WorkspaceConfig.model_validate({"gate": {"max_regression_drop": 0.05}})
    assert cfg.gate.max_regression_drop == 0.05 and cfg.gate.min_judge_lower_bound == 0.5
    with pytest.raises(ValueError, match="max_regresion_drop"):
        WorkspaceConfig.model_validate({"gate": {"max_regresion_drop": 0.05}})
