"""Eval reports: `reports/<id>/report.json` (everything) and `report.html` (for a person:
verdict first, then per-suite pass rates, the cases whose outcome changed, latency).

The HTML is self-contained (inline CSS, no scripts, no network) so it opens from an air-gapped
machine or a CI artifact store, and every piece of model text is escaped: model output is
untrusted input.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_directory, atomic_write_json, atomic_write_text
from ct_llm.evals.runner import CaseResult, EvalResult, SuiteResult

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;margin:0;font-size:.85rem}
.verdict{padding:1rem;border-radius:.4rem;font-size:1.1rem}
.ok{background:#e6f4ea;border:1px solid #34a853}.bad{background:#fce8e6;border:1px solid #ea4335}
.pass{color:#137333}.fail{color:#c5221f}.muted{color:#666}
"""


def _rate(x: float) -> str:
    return f"{x:.2f}"


def _ms(x: Any) -> str:
    return "-" if x is None else f"{float(x):.0f} ms"


def _outcome(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">fail</span>'


def _verdict_html(decision: dict[str, Any]) -> str:
    approved = bool(decision.get("approved"))
    cls, word = ("ok", "APPROVE") if approved else ("bad", "REJECT")
    items = []
    for r in decision.get("reasons", []):
        mark = "pass" if r.get("passed") else "fail"
        items.append(f'<li class="{mark}">{escape(str(r.get("detail", "")))}</li>')
    return (
        f'<div class="verdict {cls}"><strong>Gate verdict: {word}</strong>'
        f"<ul>{''.join(items)}</ul></div>"
    )


def _suite_table(result: EvalResult) -> str:
    rows = []
    for s in result.suites:
        delta = s.candidate_pass_rate - s.baseline_pass_rate
        rows.append(
            f"<tr><td>{escape(s.name)}</td><td>{escape(s.kind)}</td><td class=num>{s.n}</td>"
            f"<td class=num>{_rate(s.candidate_pass_rate)}</td>"
            f"<td class=num>{_rate(s.baseline_pass_rate)}</td><td class=num>{delta:+.2f}</td></tr>"
        )
    return (
        "<table><tr><th>suite</th><th>kind</th><th>cases</th><th>candidate</th>"
        f"<th>baseline</th><th>change</th></tr>{''.join(rows)}</table>"
    )


def _answer_cell(answer: str, passed: bool, failed: list[str], error: str | None) -> str:
    note = ""
    if error:
        note = f'<div class="fail">error: {escape(error)}</div>'
    elif failed:
        note = f'<div class="muted">failed: {escape(", ".join(failed))}</div>'
    return f"<td>{_outcome(passed)}<pre>{escape(answer)}</pre>{note}</td>"


def _changed_cases(suite: SuiteResult) -> str:
    changed: list[CaseResult] = [c for c in suite.cases if c.changed]
    if not changed:
        return '<p class="muted">No case changed outcome.</p>'
    rows = []
    for c in changed:
        rows.append(
            f"<tr><td>{escape(c.id)}</td><td><pre>{escape(c.prompt)}</pre></td>"
            + _answer_cell(
                c.candidate_answer, c.candidate_passed, c.candidate_failed_checks, c.candidate_error
            )
            + _answer_cell(
                c.baseline_answer, c.baseline_passed, c.baseline_failed_checks, c.baseline_error
            )
            + "</tr>"
        )
    return (
        "<table><tr><th>case</th><th>prompt</th><th>candidate</th><th>baseline</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _latency_table(result: EvalResult) -> str:
    rows = []
    for role, model in (("candidate", result.candidate), ("baseline", result.baseline)):
        st = result.latency.get(role, {})
        rows.append(
            f"<tr><td>{role}</td><td>{escape(model)}</td><td class=num>{_ms(st.get('p50_ms'))}</td>"
            f"<td class=num>{_ms(st.get('p95_ms'))}</td><td class=num>{st.get('n', 0)}</td>"
            f"<td class=num>{st.get('errors', 0)}</td></tr>"
        )
    return (
        "<table><tr><th></th><th>model</th><th>p50</th><th>p95</th><th>requests</th>"
        f"<th>errors</th></tr>{''.join(rows)}</table>"
    )


def render_html(result: EvalResult, decision: dict[str, Any] | None = None) -> str:
    title = f"Eval: {result.candidate} vs {result.baseline}"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if decision is not None:
        parts.append(_verdict_html(decision))
    parts += ["<h2>Pass rates</h2>", _suite_table(result)]
    for s in result.suites:
        parts.append(f"<h2>{escape(s.kind)}/{escape(s.name)}: cases that changed</h2>")
        if s.description:
            parts.append(f'<p class="muted">{escape(s.description)}</p>')
        parts.append(_changed_cases(s))
    parts += ["<h2>Latency</h2>", _latency_table(result)]
    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items())
    parts.append(f'<p class="muted">{escape(settings)}</p></body></html>')
    return "\n".join(parts)


def write_report(
    report_dir: Path, result: EvalResult, decision: dict[str, Any] | None = None
) -> Path:
    """Write `report.json` and `report.html` into a new folder, atomically; returns the folder."""
    report_dir = Path(report_dir)
    payload = {**result.to_dict(), "decision": decision}
    with atomic_directory(report_dir) as tmp:
        atomic_write_json(tmp / "report.json", payload)
        atomic_write_text(tmp / "report.html", render_html(result, decision))
    return report_dir
