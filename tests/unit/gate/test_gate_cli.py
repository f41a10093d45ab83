"""`ct-llm gate` end to end on a real SQLite store: the decision and its reasons are recorded,
a policy file changes the outcome, the transition is in the lineage, and a version that is not a
candidate is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import EvalReport
from ct_llm.workspace import Workspace

SUMMARY = {
    "candidate": "t-assistant-v1",
    "baseline": "base",
    "suites": {
        "general": {
            "kind": "regression",
            "candidate_pass_rate": 1.0,
            "baseline_pass_rate": 1.0,
            "n": 16,
        },
        "returns": {
            "kind": "target",
            "candidate_pass_rate": 0.9,
            "baseline_pass_rate": 0.0,
            "n": 14,
        },
    },
    # The judge saw only ties: no evidence the candidate is better.
    "judge": {"rate": 0.5, "low": 0.3, "high": 0.7, "n": 20, "unparseable": 0},
    "canaries": {"count": 4, "candidate_leaks": 0, "baseline_leaks": 0},
    "latency": {"candidate": {"p95_ms": 105.0}, "baseline": {"p95_ms": 100.0}},
    "adapter": {"rank": 16, "size_bytes": 7_000_000},
}


def ct_llm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ct_llm.cli", *args], capture_output=True, text=True, timeout=120
    )


def make_candidate(tmp_path: Path) -> Workspace:
    ws = Workspace.init(tmp_path / "ws")
    with session_scope(ws.database_url) as session:
        registry.register_adapter(session, "default", "t-assistant-v1", 1, "/a", None, None, {})
        session.add(
            EvalReport(
                id="r1",
                tenant="default",
                candidate="t-assistant-v1",
                baseline="base",
                path="/r1",
                summary=SUMMARY,
            )
        )
    return ws


def test_gate_records_the_decision_and_a_policy_file_can_change_it(tmp_path: Path) -> None:
    ws = make_candidate(tmp_path)
    first = ct_llm("gate", "--candidate", "t-assistant-v1", "-w", str(ws.root), "--json")
    assert first.returncode == 0, first.stderr
    res = json.loads(first.stdout)
    assert res["decision"] == "rejected" and res["report"] == "r1"
    assert [r["rule"] for r in res["reasons"] if not r["passed"]] == ["judge"]

    policy = tmp_path / "lenient.yaml"
    policy.write_text("min_judge_lower_bound: 0.25\n")
    second = ct_llm(
        "gate", "--candidate", "t-assistant-v1", "-w", str(ws.root), "--policy", str(policy)
    )
    assert second.returncode == 0, second.stderr
    assert "approved" in second.stdout and "judge: win rate 0.50" in second.stdout

    lineage = json.loads(ct_llm("lineage", "t-assistant-v1", "-w", str(ws.root), "--json").stdout)
    assert lineage["state"] == "approved"
    assert [(t["from"], t["to"]) for t in lineage["transitions"]] == [
        ("candidate", "rejected"),
        ("rejected", "approved"),
    ]
    gates = [h for h in lineage["history"] if h["action"] == "gate"]
    assert gates[1]["details"]["policy"]["min_judge_lower_bound"] == 0.25
    assert gates[1]["details"]["policy_source"] == str(policy)
    assert [c["link"] for c in lineage["chain"]] == ["adapter", "report", "decision", "decision"]


def test_bad_policy_file_and_non_candidates_are_one_line_errors(tmp_path: Path) -> None:
    ws = make_candidate(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_latency_ratio: fast\n")
    out = ct_llm("gate", "--candidate", "t-assistant-v1", "-w", str(ws.root), "--policy", str(bad))
    assert out.returncode != 0 and "max_latency_ratio" in out.stderr
    assert "Traceback" not in out.stderr
    with session_scope(ws.database_url) as session:
        registry.set_state(session, "default", "t-assistant-v1", "approved")
        registry.set_state(session, "default", "t-assistant-v1", "canary")
    out = ct_llm("gate", "--candidate", "t-assistant-v1", "-w", str(ws.root))
    assert out.returncode != 0 and "only candidates go through the gate" in out.stderr
