"""Promotion gate: pure policy over eval summaries (`policy.py`) and its recording (`record.py`)."""

from ct_llm.gate.policy import Decision, GatePolicy, RuleResult, decide_promotion

__all__ = ["Decision", "GatePolicy", "RuleResult", "decide_promotion"]
