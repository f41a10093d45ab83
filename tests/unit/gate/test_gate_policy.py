from __future__ import annotations

from typing import Any

import pytest

from ct_llm.config import GateConfig
from ct_llm.gate.policy import GatePolicy, decide_promotion


def summary(
    suites: dict[str, tuple[str, float, float]],
    p95: tuple[float | None, float | None] = (100.0, 100.0),
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
    }


def test_approves_when_target_improves_and_regression_holds() -> None:
    d = decide_promotion(
        summary({"general": ("regression", 0.9, 0.9), "shop-returns": ("target", 0.8, 0.2)}),
        GatePolicy(),
    )
    assert d.approved
    assert [r.rule for r in d.reasons] == ["evidence", "regression:general", "target:shop-returns"]
    assert all(r.passed for r in d.reasons)
    general = d.reasons[1].detail
    assert general == "regression/general: 0.90 vs production 0.90 (allowed drop 0.01) -> pass"
    assert d.to_dict()["approved"] is True
    assert d.to_dict()["reasons"][2] == {
        "rule": "target:shop-returns",
        "passed": True,
        "detail": d.reasons[2].detail,
    }


def test_rejects_a_regression_drop_beyond_the_allowance() -> None:
    d = decide_promotion(
        summary({"general": ("regression", 0.85, 0.9), "shop-returns": ("target", 1.0, 0.2)}),
        GatePolicy(),
    )
    assert not d.approved
    assert [r.rule for r in d.failed] == ["regression:general"]
    assert "0.85 vs production 0.90" in d.failed[0].detail and "FAIL" in d.failed[0].detail


def test_a_drop_exactly_at_the_allowance_passes() -> None:
    # 0.8 - 0.1 in floating point is 0.7000000000000001 > 0.7: the tolerance keeps it a pass.
    d = decide_promotion(
        summary({"general": ("regression", 0.7, 0.8)}), GatePolicy(max_regression_drop=0.1)
    )
    assert d.approved


def test_target_gain_rules() -> None:
    equal = summary({"shop-returns": ("target", 0.5, 0.5)})
    assert decide_promotion(equal, GatePolicy(min_target_gain=0.0)).approved
    d = decide_promotion(equal, GatePolicy(min_target_gain=0.1))
    assert not d.approved and d.failed[0].rule == "target:shop-returns"
    assert "required gain 0.10" in d.failed[0].detail
    worse = summary({"shop-returns": ("target", 0.4, 0.5)})
    assert not decide_promotion(worse, GatePolicy()).approved


@pytest.mark.parametrize("suites", [{}, None])
def test_no_suites_is_no_evidence_and_rejected(suites: dict[str, Any] | None) -> None:
    d = decide_promotion({"candidate": "a", "baseline": "b", "suites": suites}, GatePolicy())
    assert not d.approved
    assert d.failed[0].rule == "evidence"


def test_suite_with_no_cases_or_unknown_kind_fails() -> None:
    s = summary({"general": ("regression", 0.0, 0.0), "odd": ("smoke", 1.0, 0.0)})
    s["suites"]["general"]["n"] = 0
    d = decide_promotion(s, GatePolicy())
    assert sorted(r.rule for r in d.failed) == ["regression:general", "smoke:odd"]


def test_latency_rule_only_when_configured() -> None:
    slow = summary({"general": ("regression", 1.0, 1.0)}, p95=(300.0, 100.0))
    assert decide_promotion(slow, GatePolicy()).approved
    d = decide_promotion(slow, GatePolicy(max_latency_ratio=2.0))
    assert not d.approved and d.failed[0].rule == "latency" and "3.00x" in d.failed[0].detail
    assert decide_promotion(slow, GatePolicy(max_latency_ratio=3.5)).approved
    unmeasured = summary({"general": ("regression", 1.0, 1.0)}, p95=(None, 100.0))
    assert not decide_promotion(unmeasured, GatePolicy(max_latency_ratio=2.0)).approved


def test_policy_from_config() -> None:
    p = GatePolicy.from_config(GateConfig(max_regression_drop=0.05, min_target_gain=0.1))
    assert p == GatePolicy(max_regression_drop=0.05, min_target_gain=0.1, max_latency_ratio=None)
