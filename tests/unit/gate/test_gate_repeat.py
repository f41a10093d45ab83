from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ct_llm.gate.repeat import summarize_repeats
from ct_llm.workspace import Workspace


def _preview(approved: bool, failed: tuple[str, ...] = ()) -> dict[str, object]:
    reasons = [{"rule": "evidence", "passed": True, "detail": "ok"}]
    reasons += [{"rule": r, "passed": False, "detail": "no"} for r in failed]
    return {"approved": approved, "reasons": reasons}


def test_same_verdict_for_the_same_reasons_is_identical() -> None:
    s = summarize_repeats([_preview(True)] * 5)
    assert s.identical and s.verdicts == ["approve"] * 5 and s.majority == "approve (5 of 5)"


def test_a_flipped_verdict_or_another_failing_rule_is_not_identical() -> None:
    flipped = summarize_repeats([_preview(True)] * 4 + [_preview(False, ("latency",))])
    assert not flipped.identical and flipped.majority == "approve (4 of 5)"
    assert flipped.failed_rules[-1] == ["latency"]
    # Rejected every time, but not for the same reasons: not reproducible either.
    reasons = summarize_repeats(
        [_preview(False, ("latency",)), _preview(False, ("regression:general",))]
    )
    assert reasons.verdicts == ["reject", "reject"] and not reasons.identical


def test_nothing_to_compare_is_an_error() -> None:
    with pytest.raises(ValueError, match="no evaluation"):
        summarize_repeats([])


def test_eval_repeat_evaluates_again_and_compares_verdicts(
    empty_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ct-llm eval --repeat N` runs the evaluation N times on one server and reports whether
    the gate's verdicts agree (the evaluation itself is faked: tests/integration runs it)."""
    import contextlib

    import ct_llm.deploy.vllm_server as vllm_server
    import ct_llm.evals.candidate as candidate
    from ct_llm.cli import app

    ws = empty_workspace
    previews = iter([_preview(True), _preview(False, ("latency",)), _preview(True)])
    calls: list[str] = []

    def fake_eval(ws_: object, tenant: str, version: str, **kw: object) -> dict[str, object]:
        calls.append(str(kw["server_url"]))
        return {"gate_preview": next(previews), "path": f"/r/{len(calls)}", "baseline": "b"}

    monkeypatch.setattr(candidate, "evaluate_candidate", fake_eval)
    monkeypatch.setattr(
        vllm_server, "ensure_server", lambda ws_: contextlib.nullcontext("http://srv")
    )
    args = ["eval", "--candidate", "v1", "--repeat", "3", "--workspace", str(ws.root)]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["verdicts"] == ["approve", "reject", "approve"] and not out["identical"]
    assert out["majority"] == "approve (2 of 3)" and out["reports"] == ["/r/1", "/r/2", "/r/3"]
    assert calls == ["http://srv"] * 3  # one server for all runs
