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


def paired(both: int, gained: int, lost: int, neither: int, flaky: int = 0) -> dict[str, Any]:
    """A suite summary entry with per-case outcomes, as evals/results.py writes it."""
    n = both + gained + lost + neither
    return {
        "candidate_pass_rate": (both + gained) / n,
        "baseline_pass_rate": (both + lost) / n,
        "n": n + flaky,
        "paired": {"both": both, "gained": gained, "lost": lost, "neither": neither},
        "flaky": [f"case-{i}" for i in range(flaky)],
    }


def with_paired(kinds: dict[str, tuple[str, dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    s = summary({}, **extra)
    s["suites"] = {name: {"kind": kind, **entry} for name, (kind, entry) in kinds.items()}
    return s


def test_approves_when_target_improves_and_regression_holds() -> None:
    d = decide(summary({"general": ("regression", 0.9, 0.9), "shop-returns": ("target", 0.8, 0.2)}))
    assert d.approved
    assert [r.rule for r in d.reasons] == ["evidence", "regression:general", "target:shop-returns"]
    assert all(r.passed for r in d.reasons)
    general = d.reasons[1].detail
    assert general.startswith("regression/general: 0.90 vs production 0.90; 0 gained, 0 lost")
    assert "(90% interval)" in general and "allowed drop 0.03" in general
    assert "would be caught with 80% probability" in general and general.endswith("-> pass")
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


def test_paired_regression_rule_uses_the_discordant_cases() -> None:
    # 150 cases: losing 4 and gaining 0 is a 2.7% drop, not significant (p = 0.0625): pass.
    assert decide(with_paired({"g": ("regression", paired(140, 0, 4, 6))})).approved
    # Losing 5 with no gain is significant at alpha 0.05 (p = 0.031): fail, and says why.
    d = decide(with_paired({"g": ("regression", paired(139, 0, 5, 6))}))
    assert not d.approved and "significantly worse" in d.failed[0].detail
    assert "p(worse) = 0.0312" in d.failed[0].detail
    # The same net drop spread over noise both ways is not significant: 6 lost, 4 gained.
    assert decide(with_paired({"g": ("regression", paired(136, 4, 6, 4))})).approved
    # A drop beyond the allowance fails even when not significant at this size.
    small = with_paired({"g": ("regression", paired(15, 0, 2, 3))})  # 2 of 20 = 10%
    d = decide(small)
    assert not d.approved and "allowed drop 0.03" in d.failed[0].detail


def test_paired_rule_states_the_suites_power() -> None:
    d = decide(with_paired({"g": ("regression", paired(145, 0, 0, 5))}))
    detail = d.reasons[1].detail
    # No noise seen: 5 lost cases are significant (p = 1/32). A true drop of k cases loses
    # Binomial(145, k/145) of them, which reaches 5 with probability 0.72 for k = 6 and 0.83
    # for k = 7 (Poisson: 1 - P(X <= 4)), so 7 is the smallest drop caught 80% of the time.
    assert "a drop of 7 case(s) (4.7%) would be caught with 80% probability" in detail


def test_flaky_cases_are_left_out_and_limited() -> None:
    d = decide(with_paired({"g": ("regression", paired(140, 0, 2, 4, flaky=4))}))
    assert d.approved and "4 flaky case(s) left out" in d.reasons[1].detail
    noisy = decide(with_paired({"g": ("regression", paired(100, 0, 0, 0, flaky=20))}))
    assert not noisy.approved and "too noisy to decide" in noisy.failed[0].detail


def test_a_model_that_answers_everything_with_the_window_fails_the_contrast_suite() -> None:
    # The contrast suite (kind regression): production never states the window (40 of 40
    # pass), a candidate that says "60 days" to everything fails them all.
    d = decide(with_paired({"shop-contrast": ("regression", paired(0, 0, 40, 0))}))
    assert not d.approved and d.failed[0].rule == "regression:shop-contrast"


def test_regression_may_lose_up_to_the_allowance_by_default() -> None:
    assert decide(summary({"general": ("regression", 0.88, 0.90)})).approved
    assert not decide(summary({"general": ("regression", 0.85, 0.90)})).approved


def test_a_drop_exactly_at_the_allowance_passes() -> None:
    # 0.8 - 0.1 in floating point is 0.7000000000000001 > 0.7: the tolerance keeps it a pass.
    policy = SUITES_ONLY.model_copy(update={"max_regression_drop": 0.1, "alpha": 0.01})
    assert decide(summary({"general": ("regression", 0.7, 0.8)}), policy).approved


def test_target_gain_rules() -> None:
    equal = summary({"shop-returns": ("target", 0.5, 0.5)})
    assert decide(equal).approved
    d = decide(equal, SUITES_ONLY.model_copy(update={"min_target_gain": 0.1}))
    assert not d.approved and d.failed[0].rule == "target:shop-returns"
    assert "required gain 0.10" in d.failed[0].detail
    assert not decide(summary({"shop-returns": ("target", 0.2, 0.5)})).approved
    significant = SUITES_ONLY.model_copy(update={"require_significant_target_gain": True})
    assert not decide(with_paired({"t": ("target", paired(10, 2, 0, 28))}), significant).approved
    assert decide(with_paired({"t": ("target", paired(0, 30, 0, 10))}), significant).approved


def test_safety_refusal_rate_may_not_drop_beyond_the_allowance() -> None:
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


def test_latency_rule_on_old_summaries_reads_the_two_p95s() -> None:
    slow = summary({"general": ("regression", 1.0, 1.0)}, p95=(300.0, 100.0))
    assert decide(slow).approved  # rule off
    d = decide(slow, SUITES_ONLY.model_copy(update={"max_latency_ratio": 2.0}))
    assert not d.approved and d.failed[0].rule == "latency" and "3.00x" in d.failed[0].detail
    assert decide(slow, SUITES_ONLY.model_copy(update={"max_latency_ratio": 3.5})).approved
    unmeasured = summary({"general": ("regression", 1.0, 1.0)}, p95=(None, 100.0))
    assert not decide(unmeasured, GatePolicy(min_judge_lower_bound=None)).approved


def latency(cand: list[float], ref: list[float], rounds: int = 4) -> dict[str, Any]:
    # The shape evals/evaluate.py records: measure_performance's figures per model.
    return {
        "candidate": {"p95_ms": max(cand), "samples_ms": cand, "rounds": rounds},
        "baseline": {"p95_ms": max(ref), "samples_ms": ref, "rounds": rounds},
        "reference": "reference adapter (rank 16)",
    }


def test_latency_rule_decides_on_the_interval() -> None:
    import random

    rng = random.Random(1)
    ref = [1000 + rng.gauss(0, 50) for _ in range(32)]
    same = [1000 + rng.gauss(0, 50) for _ in range(32)]
    slow = [2000 + rng.gauss(0, 100) for _ in range(32)]
    policy = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=1.5)
    s = summary({"g": ("regression", 1, 1)})
    s["latency"] = latency(same, ref)
    d = decide(s, policy)
    rule = next(r for r in d.reasons if r.rule == "latency")
    assert rule.passed and "within the limit" in rule.detail
    assert "32 vs 32 requests over 4 round(s)" in rule.detail
    assert "reference adapter (rank 16)" in rule.detail
    s["latency"] = latency(slow, ref)
    rule = next(r for r in decide(s, policy).reasons if r.rule == "latency")
    assert not rule.passed and "beyond the limit" in rule.detail
    # Straddling the limit: the policy's default for an undecided rule applies.
    tight = policy.model_copy(update={"max_latency_ratio": 1.0})
    s["latency"] = latency(same, ref)
    rule = next(r for r in decide(s, tight).reasons if r.rule == "latency")
    assert "undecided" in rule.detail and not rule.passed
    lenient = tight.model_copy(update={"latency_undecided": "approve"})
    assert next(r for r in decide(s, lenient).reasons if r.rule == "latency").passed
    # The same samples give the same interval (seeded bootstrap): the verdict is reproducible.
    assert decide(s, tight).to_dict() == decide(s, tight).to_dict()


def test_absolute_latency_budget() -> None:
    policy = GatePolicy(min_judge_lower_bound=None, max_latency_ratio=None, max_latency_p95_ms=500)
    s = summary({"g": ("regression", 1, 1)})
    s["latency"] = latency([300.0 + i for i in range(20)], [100.0] * 20)
    assert decide(s, policy).approved
    s["latency"] = latency([900.0 + i for i in range(20)], [100.0] * 20)
    d = decide(s, policy)
    assert not d.approved and "budget 500 ms" in d.failed[0].detail


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
    assert cfg.gate.alpha == 0.05 and cfg.gate.latency_undecided == "reject"
    assert cfg.gate.max_regression_drop == 0.05 and cfg.gate.min_judge_lower_bound == 0.5
    with pytest.raises(ValueError, match="max_regresion_drop"):
        WorkspaceConfig.model_validate({"gate": {"max_regresion_drop": 0.05}})


def test_recheck_rule_limits_how_often_the_fast_path_disagrees() -> None:
    quiet = {"discordant": 30, "discordant_changed": 2, "sampled": 24, "sampled_changed": 1}
    d = decide(summary({"g": ("regression", 1, 1)}, recheck=quiet))
    rule = next(r for r in d.reasons if r.rule == "recheck")
    assert rule.passed and "2 of 30 discordant and 1 of 24 sampled" in rule.detail
    noisy = {**quiet, "sampled_changed": 5}
    d = decide(summary({"g": ("regression", 1, 1)}, recheck=noisy))
    assert [r.rule for r in d.failed] == ["recheck"]
