"""Eval reports: `reports/<id>/report.json` (everything) and `report.html` (for a person).

The HTML is rendered from the report.json payload alone, so an old report re-renders and a
report whose judge, RAG or performance part did not run still renders: every key may be missing
or null, and what is missing is said, never guessed. The page reads top to bottom as: verdict,
per-suite pass rates, charts (judge win rate, pass rates, latency), RAG metrics, canary leaks,
performance, the examples that changed most, settings.

The file is self-contained (inline CSS and SVG, no script, no URL to fetch) so it opens from an
air-gapped machine or a CI artifact store, and a Content-Security-Policy forbids scripts and
fetches as a second line. Every piece of text from the payload is escaped: model output is
untrusted input.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_directory, atomic_write_json, atomic_write_text
from ct_llm.evals import report_charts as charts
from ct_llm.evals.report_charts import number as _num

EXAMPLES_PER_LIST = 10
"""Longer lists are cut here; the page says how many more report.json holds."""
MAX_TEXT_CHARS = 4000
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_PASS, _FAIL = '<span class="pass">&#10003; pass</span>', '<span class="fail">&#10007; fail</span>'
_KIND_ORDER = {"safety": 0, "regression": 1, "target": 2}  # a safety regression matters most

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#202124;
padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem}
h3{font-size:1rem;margin-top:1.4rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #dadce0;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.narrow{width:auto;min-width:24rem}
table.examples{table-layout:fixed}table.examples th:first-child{width:13%}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-size:.85rem}
.verdict{padding:.8rem 1.2rem;border-radius:.4rem;margin:1rem 0}
.verdict .word{font-size:1.4rem;font-weight:700;letter-spacing:.05em}
.verdict ul{margin:.4rem 0 0;padding-left:0;list-style:none}
.approve{background:#e6f4ea;border:2px solid #1e8e3e}
.reject{background:#fce8e6;border:2px solid #d93025}
.none{background:#f1f3f4;border:2px solid #80868b}
.pass{color:#137333}.fail{color:#c5221f}.muted{color:#5f6368}
.warning{background:#fce8e6;border:2px solid #d93025;padding:.6rem 1rem;border-radius:.4rem}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
svg.chart{width:100%;max-width:48rem;height:auto;display:block}
details summary{cursor:pointer;color:#1a62c9}
"""


# Payload coercion: a report.json is data from disk, possibly older than this code.
def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _s(x: Any) -> str:
    return "" if x is None else str(x)


def _e(x: Any) -> str:
    return escape(_s(x))


def _pre(text: Any) -> str:
    text = _s(text)
    if len(text) <= MAX_TEXT_CHARS:
        return f"<pre>{escape(text)}</pre>"
    cut = '<div class="muted">(cut; full text in report.json)</div>'
    return f"<pre>{escape(text[:MAX_TEXT_CHARS])}</pre>{cut}"


def _fmt(x: Any, spec: str, suffix: str = "", scale: float = 1.0, missing: str = "n/a") -> str:
    v = _num(x)
    return missing if v is None else f"{v / scale:{spec}}{suffix}"


def _change(cand: float | None, base: float | None, points: bool = True) -> str:
    if cand is None or base is None:
        return "n/a"
    delta = cand - base
    text = f"{100 * delta:+.1f} pt" if points else f"{delta:+.2f}"
    cls = "fail" if delta < 0 else "pass" if delta > 0 else "muted"
    return f'<span class="{cls}">{text}</span>'


def _mark(passed: Any) -> str:
    if not isinstance(passed, bool):
        return '<span class="muted">n/a</span>'
    return _PASS if passed else _FAIL


def _table(headers: list[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _more(total: int, shown: int, what: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="muted">{total - shown} more {what} in report.json.</p>'


def _verdict(decision: Any) -> str:
    if not isinstance(decision, dict):
        return (
            '<div id="verdict" class="verdict none"><span class="word">NO VERDICT</span>'
            "<div>The gate did not run for this report.</div></div>"
        )
    approved = decision.get("approved") is True
    cls, word = ("approve", "APPROVE") if approved else ("reject", "REJECT")
    items = []
    for r in map(_d, _l(decision.get("reasons"))):
        rule = f"<strong>{_e(r.get('rule'))}</strong>" if r.get("rule") else ""
        sep = ": " if rule and r.get("detail") else ""
        items.append(f"<li>{_mark(r.get('passed'))} {rule}{sep}{_e(r.get('detail'))}</li>")
    return (
        f'<div id="verdict" class="verdict {cls}"><span class="word">{word}</span>'
        f" <span>gate verdict on the candidate</span><ul>{''.join(items)}</ul></div>"
    )


def _suite_rate(suite: dict[str, Any], role: str) -> float | None:
    rate = _num(suite.get(f"{role}_pass_rate"))
    if rate is None:  # older reports: recount from the cases
        flags = [c.get(f"{role}_passed") for c in map(_d, _l(suite.get("cases")))]
        flags = [f for f in flags if isinstance(f, bool)]
        rate = sum(flags) / len(flags) if flags else None
    return rate


def _suites(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _l(payload.get("suites")) if isinstance(s, dict)]


def _suite_table(suites: list[dict[str, Any]]) -> str:
    if not suites:
        return '<p class="muted">No check-based suite in this report.</p>'
    rows = []
    for s in suites:
        cand, base = _suite_rate(s, "candidate"), _suite_rate(s, "baseline")
        n = _num(s.get("n"))
        n_text = f"{n:.0f}" if n is not None else str(len(_l(s.get("cases"))) or "n/a")
        desc = (
            f'<div class="muted">{_e(s.get("description"))}</div>' if s.get("description") else ""
        )
        flaky = sum(1 for c in map(_d, _l(s.get("cases"))) if _is_flaky(c))
        rows.append(
            f"<tr><td>{_e(s.get('name'))}{desc}</td><td>{_e(s.get('kind'))}</td>"
            f"<td class=num>{charts.pct(cand)}</td><td class=num>{charts.pct(base)}</td>"
            f"<td class=num>{_change(cand, base)}</td><td class=num>{n_text}</td>"
            f"<td class=num>{flaky}</td></tr>"
        )
    headers = ["suite", "kind", "candidate", "production", "change", "cases", "flaky"]
    return _table(headers, rows, "suites")


def _is_flaky(case: dict[str, Any]) -> bool:
    """Its outcome changed when asked again (evals/recheck.py); left out of the gate's test."""
    return any(
        isinstance(case.get(f"{role}_recheck"), bool)
        and case.get(f"{role}_recheck") != case.get(f"{role}_passed")
        for role in ("candidate", "baseline")
    )


def _perf_rows(perf: dict[str, Any], payload: dict[str, Any]) -> list[str]:
    rows = []
    for role, label in (("candidate", "candidate"), ("baseline", "production")):
        st = _d(perf.get(role))
        rows.append(
            f"<tr><td>{label}</td><td>{_e(payload.get(role))}</td>"
            f"<td class=num>{_fmt(st.get('p50_ms'), '.0f', ' ms')}</td>"
            f"<td class=num>{_fmt(st.get('p95_ms'), '.0f', ' ms')}</td>"
            f"<td class=num>{_fmt(st.get('tokens_per_s'), '.1f')}</td>"
            f"<td class=num>{_fmt(st.get('n'), '.0f')}</td>"
            f"<td class=num>{_fmt(st.get('errors'), '.0f')}</td></tr>"
        )
    return rows


def _charts(payload: dict[str, Any], suites: list[dict[str, Any]]) -> str:
    judge = payload.get("judge")
    parts = ["<h2>Charts</h2>"]
    if isinstance(judge, dict):
        parts.append(charts.judge_figure(judge))
    else:
        parts.append('<p class="muted">No pairwise judge ran for this report.</p>')
    if suites:
        rows = [
            (_s(s.get("name")) or "?", _suite_rate(s, "candidate"), _suite_rate(s, "baseline"))
            for s in suites
        ]
        parts.append(
            "<figure><figcaption>Pass rate per suite, candidate vs production"
            f"</figcaption>{charts.pass_rate_chart(rows)}</figure>"
        )
    perf = _d(payload.get("performance"))
    cand, base = _d(perf.get("candidate")), _d(perf.get("baseline"))
    keys = ("p50_ms", "p95_ms")
    cand_ms, base_ms = {k: _num(cand.get(k)) for k in keys}, {k: _num(base.get(k)) for k in keys}
    if any(v is not None for v in (*cand_ms.values(), *base_ms.values())):
        svg = charts.latency_chart(cand_ms, base_ms)
        headers = ["", "model", "p50", "p95", "tokens/s", "requests", "errors"]
        parts.append(
            "<figure><figcaption>Latency per request, candidate vs production"
            f"</figcaption>{svg}{_table(headers, _perf_rows(perf, payload))}</figure>"
        )
    else:
        parts.append('<p class="muted">No latency measurements in this report.</p>')
    return "".join(parts)


def _rag_table(rag: Any) -> str:
    metrics = _d(_d(rag).get("metrics"))
    if not metrics:
        return '<p class="muted">No RAG evaluation in this report.</p>'
    rows = []
    for name, m in metrics.items():
        m = _d(m)
        cand, base = _num(m.get("candidate")), _num(m.get("baseline"))
        rows.append(
            f"<tr><td>{_e(name)}</td><td class=num>{_fmt(cand, '.2f')}</td>"
            f"<td class=num>{_fmt(base, '.2f')}</td>"
            f"<td class=num>{_change(cand, base, points=False)}</td>"
            f"<td class=num>{_fmt(m.get('n'), '.0f')}</td>"
            f"<td class=num>{_fmt(m.get('failed'), '.0f')}</td></tr>"
        )
    return _table(["metric", "candidate", "production", "change", "cases", "not scored"], rows)


def _safety(safety: Any) -> str:
    if not isinstance(safety, dict):
        return '<p class="muted">No canary check in this report.</p>'
    canaries = _num(safety.get("canaries"))
    planted = "" if canaries is None else f" ({canaries:.0f} canaries planted)"
    leaks = [_d(x) for x in _l(safety.get("leaks"))]
    if not leaks:
        return f'<p id="canaries" class="pass">No canary leaked{planted}.</p>'
    rows = [
        f"<tr><td>{_e(k.get('model'))}</td><td>{_e(k.get('suite'))}</td><td>{_e(k.get('case'))}"
        f"</td><td><code>{_e(k.get('canary'))}</code></td></tr>"
        for k in leaks
    ]
    return (
        f'<div id="canaries" class="warning"><strong>{len(leaks)} canary leak(s){planted}: '
        "a model repeated a secret planted in its prompt.</strong>"
        f"{_table(['model', 'suite', 'case', 'canary'], rows)}</div>"
    )


def _performance(perf: Any) -> str:
    adapter = _d(_d(perf).get("adapter"))
    if not adapter:
        return '<p class="muted">No adapter measurements in this report.</p>'
    values = {  # MB = 10^6 bytes
        "LoRA rank": _fmt(adapter.get("rank"), ".0f"),
        "adapter size on disk": _fmt(adapter.get("size_bytes"), ".1f", " MB", 1e6),
        "trainable parameters": _fmt(adapter.get("parameters"), ".2f", " M", 1e6),
        "serving memory": _fmt(
            adapter.get("serving_memory_bytes"), ".1f", " MB", 1e6, missing="not measured"
        ),
    }
    rows = [f"<tr><td>{k}</td><td class=num>{v}</td></tr>" for k, v in values.items()]
    return _table(["adapter", "value"], rows, "narrow")


def _answer(case: dict[str, Any], role: str) -> str:
    """One model's answer to a check-suite case, its outcome, and why it failed."""
    error, failed = case.get(f"{role}_error"), _l(case.get(f"{role}_failed_checks"))
    note = ""
    if error:
        note = f'<div class="fail">error: {_e(error)}</div>'
    elif failed:
        note = f'<div class="muted">failed checks: {escape(", ".join(map(_s, failed)))}</div>'
    return f"<td>{_mark(case.get(f'{role}_passed'))}{_pre(case.get(f'{role}_answer'))}{note}</td>"


def _flipped_cases(suites: list[dict[str, Any]]) -> str:
    flipped: list[tuple[bool, int, dict[str, Any], dict[str, Any]]] = []
    for s in suites:
        for c in map(_d, _l(s.get("cases"))):
            cand, base = c.get("candidate_passed"), c.get("baseline_passed")
            if isinstance(cand, bool) and isinstance(base, bool) and cand != base:
                kind = _KIND_ORDER.get(_s(s.get("kind")), 3)
                flipped.append((cand, kind if base else -kind, s, c))
    if not flipped:
        return '<p class="muted">No check-suite case changed outcome.</p>'
    flipped.sort(key=lambda t: (t[0], t[1]))  # regressions first, safety first among them
    rows = []
    for cand, _, s, c in flipped[:EXAMPLES_PER_LIST]:
        change = (
            '<span class="pass">improved</span>' if cand else '<span class="fail">regressed</span>'
        )
        change += f"<div>{_e(s.get('name'))} / {_e(c.get('id'))}</div>"
        if _is_flaky(c):
            again = _pre(c.get("recheck_answer"))
            change += (
                '<div class="muted">flaky: the outcome changed when asked again, so the gate '
                f"left it out; the candidate as served answered:</div>{again}"
            )
        rows.append(
            f"<tr><td>{change}</td>"
            f"<td>{_pre(c.get('prompt'))}</td>"
            f"{_answer(c, 'candidate')}{_answer(c, 'baseline')}</tr>"
        )
    headers = ["case", "prompt", "candidate", "production"]
    return _table(headers, rows, "examples") + _more(len(flipped), len(rows), "changed cases")


def _judge_examples(judge: Any) -> str:
    items = [_d(i) for i in _l(_d(judge).get("items"))]
    decided = [i for i in items if i.get("outcome") in ("loss", "win")]
    if not decided:
        return '<p class="muted">No comparison the candidate won or lost in both orders.</p>'
    decided.sort(key=lambda i: i.get("outcome") != "loss")  # losses first
    rows = []
    for i in decided[:EXAMPLES_PER_LIST]:
        won = i.get("outcome") == "win"
        label = '<span class="pass">won</span>' if won else '<span class="fail">lost</span>'
        raw = "".join(_pre(r) for r in _l(i.get("raw")))
        orders = (
            f"candidate shown as A, judge picked {_e(i.get('candidate_first') or '?')}; "
            f"as B, picked {_e(i.get('candidate_second') or '?')}"
        )
        rows.append(
            f"<tr><td>{label}<div>{_e(i.get('id'))}</div></td><td>{_pre(i.get('prompt'))}</td>"
            f"<td>{_pre(i.get('candidate_answer'))}</td><td>{_pre(i.get('baseline_answer'))}</td>"
            f'<td><div class="muted">{orders}</div>'
            f"<details><summary>judge output</summary>{raw}</details></td></tr>"
        )
    headers = ["comparison", "prompt", "candidate", "production", "judge"]
    return _table(headers, rows, "examples") + _more(len(decided), len(rows), "decided comparisons")


def _rag_gap(case: dict[str, Any]) -> float | None:
    scores = _d(case.get("scores"))
    cand, base = _d(scores.get("candidate")), _d(scores.get("baseline"))
    gaps = [
        abs(c - b)
        for k in cand
        if (c := _num(cand.get(k))) is not None and (b := _num(base.get(k))) is not None
    ]
    return max(gaps) if gaps else None


def _rag_examples(rag: Any) -> str:
    cases = [
        (gap, c)
        for c in map(_d, _l(_d(rag).get("cases")))
        if (gap := _rag_gap(c)) is not None and gap > 0
    ]
    if not cases:
        return '<p class="muted">No RAG case with a score difference.</p>'
    cases.sort(key=lambda t: -t[0])
    rows = []
    for _, c in cases[:EXAMPLES_PER_LIST]:
        scores = _d(c.get("scores"))
        cand, base = _d(scores.get("candidate")), _d(scores.get("baseline"))
        lines = [
            f"{_e(k)}: {_fmt(cand.get(k), '.2f')} vs {_fmt(base.get(k), '.2f')} "
            f"({_change(_num(cand.get(k)), _num(base.get(k)), points=False)})"
            for k in cand
        ]
        errors = "".join(f'<div class="fail">{_e(x)}</div>' for x in _l(c.get("errors")))
        contexts = "".join(_pre(x) for x in _l(c.get("contexts")))
        rows.append(
            f"<tr><td>{_e(c.get('id'))}</td><td>{_pre(c.get('question'))}"
            f"<details><summary>contexts</summary>{contexts}</details></td>"
            f"<td>{_pre(c.get('candidate_answer'))}</td><td>{_pre(c.get('baseline_answer'))}</td>"
            f"<td>{'<br>'.join(lines)}{errors}</td></tr>"
        )
    headers = ["case", "question", "candidate", "production", "scores (candidate vs production)"]
    return _table(headers, rows, "examples") + _more(len(cases), len(rows), "RAG cases")


def _settings(payload: dict[str, Any]) -> str:
    settings = _d(payload.get("settings"))
    rows = [f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in settings.items()]
    table = (
        _table(["setting", "value"], rows) if rows else '<p class="muted">No settings recorded.</p>'
    )
    summary = ""
    if payload.get("summary") is not None:
        raw = json.dumps(payload["summary"], indent=2, sort_keys=True, default=str)
        summary = f"<details><summary>Gate input (summary)</summary>{_pre(raw)}</details>"
    return table + summary


def render_html(payload: dict[str, Any]) -> str:
    """The report page for a report.json payload; any part of it may be missing or null."""
    payload = _d(payload)
    suites = _suites(payload)
    cand = _s(payload.get("candidate")) or "candidate"
    base = _s(payload.get("baseline")) or "production"
    title = f"Eval report: {cand} vs {base}"
    meta = [
        f"{label} <strong>{_e(payload.get(key))}</strong>"
        for label, key in (("tenant", "tenant"), ("created", "created_at"), ("report", "id"))
        if payload.get(key)
    ]
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">candidate <strong>{escape(cand)}</strong> against production '
        f"<strong>{escape(base)}</strong>{'; ' if meta else ''}{'; '.join(meta)}</p>",
        _verdict(payload.get("decision")),
        "<h2>Pass rate per suite</h2>",
        _suite_table(suites),
        _charts(payload, suites),
        "<h2>RAG metrics</h2>",
        _rag_table(payload.get("rag")),
        "<h2>Safety: canaries</h2>",
        _safety(payload.get("safety")),
        "<h2>Performance</h2>",
        _performance(payload.get("performance")),
        "<h2>Examples that changed most</h2>",
        "<h3>Check-suite cases whose outcome flipped</h3>",
        _flipped_cases(suites),
        "<h3>Judge: won or lost in both orders</h3>",
        _judge_examples(payload.get("judge")),
        "<h3>RAG: largest score differences</h3>",
        _rag_examples(payload.get("rag")),
        "<h2>Settings</h2>",
        _settings(payload),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(report_dir: Path, payload: dict[str, Any]) -> Path:
    """Write `report.json` and `report.html` into a new folder, atomically; returns the folder."""
    report_dir = Path(report_dir)
    html = render_html(payload)  # before the folder exists: a rendering bug leaves nothing behind
    with atomic_directory(report_dir) as tmp:
        atomic_write_json(tmp / "report.json", payload)
        atomic_write_text(tmp / "report.html", html)
    return report_dir
