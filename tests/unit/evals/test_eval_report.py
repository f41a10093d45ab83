from __future__ import annotations

import json
from pathlib import Path

import pytest

from ct_llm.evals.report import write_report
from ct_llm.evals.runner import CaseResult, EvalResult, SuiteResult
from ct_llm.gate.policy import GatePolicy, decide_promotion

EVIL = "<script>alert('x')</script>"


def make_result() -> EvalResult:
    general = SuiteResult(
        "general",
        "regression",
        "basics",
        [
            CaseResult("same", "2+2?", "4", "4", True, True),
            CaseResult(
                "flip",
                f"say {EVIL}",
                EVIL,
                "fine",
                False,
                True,
                candidate_failed_checks=["not_contains '<script>'"],
            ),
        ],
    )
    target = SuiteResult(
        "shop-returns",
        "target",
        "",
        [
            CaseResult(
                "r1",
                "return window?",
                "60 days",
                "",
                True,
                False,
                baseline_error="HTTP 500: boom & <b>bust</b>",
            ),
        ],
    )
    latency = {
        "candidate": {"p50_ms": 120.0, "p95_ms": 300.0, "n": 3, "errors": 0},
        "baseline": {"p50_ms": 110.0, "p95_ms": 280.0, "n": 2, "errors": 1},
    }
    return EvalResult(
        "t-assistant-v2", "t-assistant-v1", [general, target], latency, {"max_tokens": 96}
    )


def test_report_is_atomic_escaped_and_complete(tmp_path: Path) -> None:
    result = make_result()
    decision = decide_promotion(result.summary(), GatePolicy()).to_dict()
    out = write_report(tmp_path / "r1", result, decision)
    assert out == tmp_path / "r1"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]

    html = (out / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;bust&lt;/b&gt;" in html  # error text is escaped too
    assert "general" in html and "shop-returns" in html
    # The verdict comes first: the regression case that flipped rejects the candidate.
    assert html.index("Gate verdict: REJECT") < html.index("Pass rates")
    assert "0.50 vs production 1.00" in html
    assert "flip" in html and ">same<" not in html  # only changed cases are listed
    assert "300 ms" in html
    assert not any(t in html for t in ("src=", "href=", "<link", "@import"))  # self-contained

    data = json.loads((out / "report.json").read_text())
    assert data["decision"]["approved"] is False
    assert data["summary"]["suites"]["general"]["candidate_pass_rate"] == 0.5
    assert data["suites"][1]["cases"][0]["baseline_error"].startswith("HTTP 500")


def test_report_without_decision_and_never_overwritten(tmp_path: Path) -> None:
    out = write_report(tmp_path / "r2", make_result())
    html = (out / "report.html").read_text()
    assert "Gate verdict" not in html and "Pass rates" in html
    assert json.loads((out / "report.json").read_text())["decision"] is None
    with pytest.raises(FileExistsError):
        write_report(out, make_result())
