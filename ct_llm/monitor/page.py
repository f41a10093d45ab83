"""The status page: one self-contained HTML file from a monitor/page_data.py payload.

Served by the API (`GET /v1/admin/status.html`, admin key) and written by
`ct-llm status --html FILE`. Like the eval report it has inline CSS and SVG, no script and no
URL to fetch, and a Content-Security-Policy that forbids both, so it opens the same from a
file, a mail attachment or behind a proxy. Every text from the store (version names, actors,
reasons, rule names) is escaped. It reads top to bottom as: what is served now, how the users'
votes went per version and day with the version changes marked, the registry's transitions,
the last eval reports, the last cycles.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Any

from ct_llm.evals.report_charts import number, pct
from ct_llm.monitor.charts import quality_chart, version_colours
from ct_llm.monitor.quality import chart_days, quality_series
from ct_llm.monitor.timeline import VersionChange

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""Also sent as a header by the API; the meta copy protects the file written to disk."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#202124;
padding:0 1rem;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #dadce0;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f3f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(21rem,1fr));gap:.8rem}
.card{border:1px solid #dadce0;border-radius:.4rem;padding:.6rem .9rem}
.card h3{font-size:.8rem;text-transform:uppercase;letter-spacing:.06em;color:#5f6368;margin:0}
.card .big{font-size:1.15rem;font-weight:650;overflow-wrap:anywhere;margin:.2rem 0}
.card ul{margin:.3rem 0 0;padding-left:1.1rem}
.ok,.approved,.deployed,.promote,.production{color:#137333}
.bad,.rejected,.rollback{color:#c5221f}.muted,.skipped,.wait{color:#5f6368}
[class*="failed-"]{color:#c5221f}
.badge{font-weight:650}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
svg.chart{width:100%;max-width:48rem;height:auto;display:block}
details summary{cursor:pointer;color:#1a62c9}
code{font-size:.85rem;overflow-wrap:anywhere}.t{white-space:nowrap}
"""


def _e(x: Any) -> str:
    return escape("" if x is None else str(x))


def _when(x: Any) -> str:
    """An ISO time from the payload as `YYYY-MM-DD HH:MM` (UTC) on one line; other text as is,
    escaped."""
    try:
        moment = datetime.fromisoformat(str(x))
    except ValueError:
        return _e(x)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f'<span class="t">{moment.strftime("%Y-%m-%d %H:%M")}</span>'


def _seconds(x: Any) -> str:
    v = number(x)
    return "" if v is None else f"{v:.1f} s" if v < 10 else f"{v:.0f} s"


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _cls(word: Any) -> str:
    """A CSS class from an outcome word (approved, failed:train, ...): letters only."""
    return "".join(ch for ch in str(word or "") if ch.isalpha() or ch == ":").replace(":", "-")


def _badge(word: Any) -> str:
    if word is None:
        return '<span class="muted">none</span>'
    return f'<span class="badge {_cls(word)}">{_e(word)}</span>'


def _table(headers: list[str], rows: list[str], table_id: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    attr = f' id="{table_id}"' if table_id else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _rating(x: Any) -> str:
    v = number(x)
    return "n/a" if v is None else f"{v:.2f}"


def _quality_line(q: dict[str, Any]) -> str:
    if not q:
        return '<span class="muted">no votes</span>'
    return (
        f"thumbs-down {pct(number(q.get('thumbs_down_rate')))} of {_e(q.get('thumbs'))}, "
        f"mean rating {_rating(q.get('mean_rating'))} of {_e(q.get('ratings'))}"
    )


def _card(card_id: str, title: str, big: str, lines: list[str]) -> str:
    items = "".join(f"<li>{x}</li>" for x in lines if x)
    return (
        f'<div class="card" id="{card_id}"><h3>{title}</h3><div class="big">{big}</div>'
        f"{f'<ul>{items}</ul>' if items else ''}</div>"
    )


def _glance(st: dict[str, Any]) -> str:
    recent = _d(_d(st.get("recent_quality")).get("by_model_version"))
    hours = number(_d(st.get("recent_quality")).get("hours"))
    window = f"last {hours:g} h" if hours is not None else "recently"
    prod = st.get("production")
    served = prod or f"{st.get('base_model')} (base model)"
    cards = [
        _card(
            "card-production",
            "Production",
            _e(served),
            [f"{window}: {_quality_line(_d(recent.get(prod or st.get('base_model'))))}"],
        )
    ]
    canary = _d(st.get("canary"))
    if canary:
        check = _d(canary.get("last_check"))
        check_line = (
            f"last check: {_badge(check.get('action'))} at {_when(check.get('at'))} UTC"
            if check
            else "not checked yet"
        )
        weight = number(canary.get("weight"))
        cards.append(
            _card(
                "card-canary",
                "Canary",
                _e(canary.get("version")),
                [
                    f"{pct(weight)} of conversations since {_when(canary.get('since'))} UTC",
                    check_line,
                    *[_e(r) for r in _l(check.get("reasons"))[:3]],
                    f"{window}: {_quality_line(_d(recent.get(canary.get('version'))))}",
                ],
            )
        )
    else:
        cards.append(_card("card-canary", "Canary", '<span class="muted">none</span>', []))
    cards.append(_cycle_card(st))
    cards.append(_triggers_card(st))
    fb = _d(st.get("feedback"))
    kinds = ", ".join(f"{_e(k)} {_e(n)}" for k, n in sorted(_d(fb.get("by_kind")).items()))
    cards.append(
        _card(
            "card-feedback",
            "Feedback",
            f"{_e(fb.get('total', 0))} events",
            [kinds, f"{_e(st.get('responses_logged', 0))} answers logged"],
        )
    )
    change, ev = _d(st.get("last_version_change")), _d(st.get("last_eval"))
    cards.append(
        _card(
            "card-changes",
            "Last version change / eval",
            _badge(change.get("action")) + (f" {_e(change.get('version'))}" if change else ""),
            [
                f"at {_when(change.get('at'))} UTC by {_e(change.get('actor'))}" if change else "",
                f"last eval {_e(ev.get('report'))}: {_badge(ev.get('verdict'))}" if ev else "",
            ],
        )
    )
    return f'<div class="cards">{"".join(cards)}</div>'


def _cycle_card(st: dict[str, Any]) -> str:
    last = _d(st.get("last_cycle"))
    if not last:
        return _card("card-cycle", "Last cycle", '<span class="muted">none yet</span>', [])
    ran = _d(st.get("last_cycle_that_ran"))
    took = _seconds(last.get("duration_s"))
    lines = [
        f"at {_when(last.get('at'))} UTC" + (f", took {took}" if took else ""),
        _e(last.get("reason")),
        _e(_d(last.get("error")).get("message")) if last.get("error") else "",
    ]
    if ran and ran.get("at") != last.get("at"):
        lines.append(f"last that ran: {_badge(ran.get('outcome'))} at {_when(ran.get('at'))} UTC")
    counts = ", ".join(f"{_e(o)} {_e(n)}" for o, n in _d(st.get("cycles_by_outcome")).items())
    lines.append(f"all cycles: {counts}" if counts else "")
    return _card("card-cycle", "Last cycle", _badge(last.get("outcome")), lines)


def _triggers_card(st: dict[str, Any]) -> str:
    trig = _d(st.get("triggers"))
    if not trig:
        return _card("card-triggers", "Triggers", '<span class="muted">no cycle yet</span>', [])
    lines = []
    for name, t in trig.items():
        t = _d(t)
        fired = '<span class="ok">fired</span>' if t.get("fired") else "not fired"
        lines.append(
            f"<strong>{_e(name)}</strong> {_e(t.get('value'))} / {_e(t.get('threshold'))}: {fired}"
        )
    return _card("card-triggers", "Triggers (at the last cycle)", "", lines)


def _quality(payload: dict[str, Any]) -> str:
    quality = [_d(q) for q in _l(payload.get("quality"))]
    changes = [VersionChange.from_dict(_d(c)) for c in _l(payload.get("changes"))]
    first, last = str(payload.get("first_day")), str(payload.get("last_day"))
    if not quality and not changes:
        return f'<p class="muted" id="no-votes">No votes from {_e(first)} to {_e(last)}.</p>'
    days = chart_days(first, last, [q["day"] for q in quality] + [c.day for c in changes])
    first_seen: dict[str, str] = {}
    for q in sorted(quality, key=lambda q: q["day"]):
        first_seen.setdefault(q["version"], q["day"])
    # Colours follow the order versions first got votes, so a version keeps its colour as
    # newer ones arrive.
    versions = sorted(first_seen, key=lambda v: (first_seen[v], v))
    colours = version_colours(versions)
    down = quality_chart(
        "chart-thumbs-down",
        "Thumbs-down rate per day and model version",
        days,
        quality_series(quality, "thumbs_down_rate"),
        changes,
        colours,
        y_range=(0.0, 1.0),
        ticks=[0.0, 0.25, 0.5, 0.75, 1.0],
        fmt="{:.0%}",
    )
    rating = quality_chart(
        "chart-rating",
        "Mean rating (1-5) per day and model version",
        days,
        quality_series(quality, "mean_rating"),
        changes,
        colours,
        y_range=(1.0, 5.0),
        ticks=[1.0, 2.0, 3.0, 4.0, 5.0],
        fmt="{:.1f}",
    )
    rows = [
        f"<tr><td>{_e(q['day'])}</td><td>{_e(q['version'])}</td>"
        f"<td class=num>{_e(q.get('thumbs'))}</td>"
        f"<td class=num>{pct(number(q.get('thumbs_down_rate')))}</td>"
        f"<td class=num>{_e(q.get('ratings'))}</td>"
        f"<td class=num>{_rating(q.get('mean_rating'))}</td></tr>"
        for q in sorted(quality, key=lambda q: (q["day"], q["version"]), reverse=True)
    ]
    table = _table(
        ["day (UTC)", "version", "thumbs", "thumbs-down", "ratings", "mean rating"], rows, "daily"
    )
    return (
        f"<figure><figcaption>Thumbs-down rate per day (UTC)</figcaption>{down}</figure>"
        f"<figure><figcaption>Mean rating per day (UTC)</figcaption>{rating}</figure>"
        f"<details><summary>The numbers per day and version</summary>{table}</details>"
    )


def _changes(payload: dict[str, Any]) -> str:
    """Newest first, numbered as on the charts (oldest = 1)."""
    changes = [_d(c) for c in _l(payload.get("changes"))]
    rows = [
        f"<tr><td class=num>{n}</td><td>{_when(c.get('at'))}</td><td>{_badge(c.get('action'))}"
        f"</td><td>{_e(c.get('version'))}</td><td>{_e(c.get('traffic_to') or 'base model')}</td>"
        f"<td>{_e(c.get('actor'))}</td></tr>"
        for n, c in reversed(list(enumerate(changes, start=1)))
    ]
    if not rows:
        return '<p class="muted">No promotion or rollback in this period.</p>'
    headers = ["#", "at (UTC)", "change", "version", "serving afterwards", "by"]
    return _table(headers, rows, "changes")


def _transitions(payload: dict[str, Any]) -> str:
    rows = [
        f"<tr><td>{_when(t.get('at'))}</td><td>{_e(t.get('version'))}</td>"
        f"<td>{_e(t.get('from'))} &rarr; {_badge(t.get('to'))}</td><td>{_e(t.get('actor'))}</td>"
        f"<td>{_e(t.get('reason'))}</td></tr>"
        for t in map(_d, _l(payload.get("transitions")))
    ]
    versions = ", ".join(
        f"{_e(v.get('version'))} {_badge(v.get('state'))}"
        for v in map(_d, _l(_d(payload.get("status")).get("versions")))
    )
    now = f'<p id="versions">Versions now: {versions}</p>' if versions else ""
    if not rows:
        return now + '<p class="muted">No version has changed state yet.</p>'
    headers = ["at (UTC)", "version", "state", "by", "reason"]
    return now + _table(headers, rows, "transitions")


def _reports(payload: dict[str, Any]) -> str:
    rows = []
    for r in map(_d, _l(payload.get("reports"))):
        suites = "<br>".join(
            f"{_e(s.get('name'))}: {pct(number(s.get('candidate')))} vs "
            f"{pct(number(s.get('baseline')))}"
            for s in map(_d, _l(r.get("suites")))
        )
        judge = _d(r.get("judge"))
        judge_text = (
            f"win rate {_rating(judge.get('rate'))} [{_rating(judge.get('low'))}, "
            f"{_rating(judge.get('high'))}] over {_e(judge.get('n'))}"
            if judge
            else '<span class="muted">no judge</span>'
        )
        failed = ", ".join(_e(x) for x in _l(r.get("failed_rules")))
        rows.append(
            f"<tr><td>{_when(r.get('at'))}</td><td><code>{_e(r.get('id'))}</code><br>"
            f"{_e(r.get('candidate'))} vs {_e(r.get('baseline'))}</td>"
            f"<td>{_badge(r.get('verdict'))}{'<br>failed: ' + failed if failed else ''}</td>"
            f"<td>{suites or '<span class=muted>no suite</span>'}</td><td>{judge_text}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No eval report yet.</p>'
    note = (
        '<p class="muted">Each report\'s full page is <code>reports/&lt;id&gt;/report.html</code> '
        "in the workspace.</p>"
    )
    headers = ["at (UTC)", "report", "gate", "pass rate per suite (candidate vs production)"]
    return _table([*headers, "judge"], rows, "reports") + note


def _cycles(payload: dict[str, Any]) -> str:
    rows = []
    for c in map(_d, _l(payload.get("cycles"))):
        why = _e(_d(c.get("error")).get("message") or c.get("reason"))
        rows.append(
            f"<tr><td>{_when(c.get('at'))}</td><td>{_badge(c.get('outcome'))}</td>"
            f"<td>{_e(c.get('candidate') or '')}</td>"
            f"<td class=num>{_seconds(c.get('duration_s'))}</td><td>{why}</td></tr>"
        )
    if not rows:
        return '<p class="muted">No cycle has run yet.</p>'
    return _table(["at (UTC)", "outcome", "candidate", "took", "why"], rows, "cycles")


def render_status_page(payload: dict[str, Any]) -> str:
    """The page for a `status_page_payload`; parts that are missing render as 'none yet'."""
    payload = _d(payload)
    st = _d(payload.get("status"))
    title = f"ct-llm status: {payload.get('tenant') or '?'}"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">generated {_when(payload.get("generated_at"))} UTC; votes from '
        f"{_e(payload.get('first_day'))} to {_e(payload.get('last_day'))} (UTC days)</p>",
        "<h2>Now</h2>",
        _glance(st),
        "<h2>Quality over time</h2>",
        _quality(payload),
        "<h2>Version changes</h2>",
        _changes(payload),
        "<h2>Registry timeline</h2>",
        _transitions(payload),
        "<h2>Last eval reports</h2>",
        _reports(payload),
        "<h2>Last cycles</h2>",
        _cycles(payload),
        "</body></html>",
    ]
    return "\n".join(parts)
