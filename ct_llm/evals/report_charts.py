"""Inline SVG charts for the eval report: plain functions from numbers to markup.

No plotting library and no script: the SVG is drawn here so `report.html` stays one file that
renders the same offline, in a CI artifact viewer, or printed. Every chart carries a `<title>`
and `<desc>` for screen readers and prints its numbers as text next to the marks, so it reads
without colour and without hovering. The drawing functions take clean numbers; `number` turns a
payload value (report.json from disk, maybe older than this code) into one. Every label is
escaped: suite names and model names come from the payload too.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

CANDIDATE = "#1a62c9"
PRODUCTION = "#80868b"
OUTCOME_COLOURS = {"win": "#1e8e3e", "tie": "#bdc1c6", "loss": "#d93025", "unparseable": "#f9ab00"}
_FONT = 'font-family="system-ui,sans-serif" font-size="13"'
_LABEL_W = 170  # room for suite names left of the bars
_BAR_W = 380


def number(x: Any) -> float | None:
    """A finite number from the payload, or None for anything else (null, text, NaN, bool)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _svg(chart_id: str, width: int, height: int, title: str, desc: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" id="{chart_id}" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f"{_FONT}>"
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, label: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="#202124"{extra}>'
        f"{escape(label)}</text>"
    )


def _legend(x: float, y: float, items: list[tuple[str, str]]) -> list[str]:
    out = []
    for label, colour in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{colour}"/>')
        out.append(_text(x + 17, y, label))
        x += 30 + 7.5 * len(label)
    return out


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def winrate_chart(
    rate: float | None, low: float | None, high: float | None, counts: dict[str, int]
) -> str:
    """The judge's win rate as a point with its 95% interval on a 0..1 axis, 0.5 marked, and the
    wins / ties / losses / unparseable counts as a stacked bar below."""
    width, height, x0, x1 = 640, 170, 40.0, 600.0

    def at(v: float) -> float:
        return x0 + (x1 - x0) * min(1.0, max(0.0, v))

    axis_y = 62.0
    body = [f'<line x1="{x0}" y1="{axis_y}" x2="{x1}" y2="{axis_y}" stroke="#5f6368"/>']
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        tick_id = {0.0: ' id="winrate-axis-0"', 1.0: ' id="winrate-axis-1"'}.get(v, "")
        body.append(
            f'<line{tick_id} x1="{at(v):.1f}" y1="{axis_y}" x2="{at(v):.1f}" y2="{axis_y + 5}" '
            'stroke="#5f6368"/>'
        )
        body.append(_text(at(v), axis_y + 19, f"{v:g}", "middle"))
    body.append(
        f'<line class="parity" x1="{at(0.5):.1f}" y1="14" x2="{at(0.5):.1f}" y2="{axis_y}" '
        'stroke="#5f6368" stroke-dasharray="4 3"/>'
    )
    body.append(_text(at(0.5) + 4, 12, "0.5 = no better, no worse", extra=' fill-opacity="0.8"'))
    point_y = 40.0
    if low is not None and high is not None:
        lo, hi = at(min(low, high)), at(max(low, high))
        body.append(
            f'<line class="ci" x1="{lo:.1f}" y1="{point_y}" x2="{hi:.1f}" y2="{point_y}" '
            f'stroke="{CANDIDATE}" stroke-width="3"/>'
        )
        for cap_id, x in (("winrate-low", lo), ("winrate-high", hi)):
            body.append(
                f'<line id="{cap_id}" x1="{x:.1f}" y1="{point_y - 8}" x2="{x:.1f}" '
                f'y2="{point_y + 8}" stroke="{CANDIDATE}" stroke-width="3"/>'
            )
    if rate is not None:
        body.append(
            f'<circle id="winrate-point" cx="{at(rate):.1f}" cy="{point_y}" r="6" '
            f'fill="{CANDIDATE}" stroke="#fff" stroke-width="1.5"/>'
        )
    interval = "" if low is None or high is None else f", 95% interval {low:.2f} to {high:.2f}"
    summary = f"win rate {rate:.2f}{interval}" if rate is not None else "no decided comparison"
    body.append(_text(x0, 108, summary, extra=' font-weight="600"'))

    total = sum(max(0, n) for n in counts.values())
    bar_y, x = 118.0, x0
    for outcome, colour in OUTCOME_COLOURS.items():
        n = max(0, counts.get(outcome, 0))
        w = (x1 - x0) * n / total if total else 0.0
        if w > 0:
            body.append(
                f'<rect class="outcome-{outcome}" x="{x:.1f}" y="{bar_y}" width="{w:.1f}" '
                f'height="14" fill="{colour}"><title>{outcome}: {n}</title></rect>'
            )
        x += w
    labels = [(f"{k} {max(0, counts.get(k, 0))}", c) for k, c in OUTCOME_COLOURS.items()]
    body += _legend(x0, 157, labels)
    desc = (
        f"{summary}; "
        + ", ".join(f"{k} {max(0, counts.get(k, 0))}" for k in OUTCOME_COLOURS)
        + "; 0.5 marks parity with production"
    )
    return _svg("chart-winrate", width, height, "Judge win rate of the candidate", desc, body)


def judge_figure(judge: dict[str, Any]) -> str:
    """The judge part of the report's payload as a captioned win-rate chart."""
    keys = {"win": "wins", "tie": "ties", "loss": "losses", "unparseable": "unparseable"}
    counts = {outcome: int(number(judge.get(key)) or 0) for outcome, key in keys.items()}
    svg = winrate_chart(
        number(judge.get("rate")), number(judge.get("low")), number(judge.get("high")), counts
    )

    def count(key: str) -> str:
        n = number(judge.get(key))
        return "n/a" if n is None else f"{n:.0f}"

    guided = judge.get("guided")
    mode = " (guided decoding)" if guided is True else " (free text)" if guided is False else ""
    facts = [
        f"judge {escape(str(judge.get('judge_model') or 'unknown'))}{mode}",
        f"{count('n')} decided comparisons (unparseable ones left out)",
        f"{count('requests')} of {count('budget')} requests",
    ]
    if number(judge.get("skipped")):
        facts.append(f"{count('skipped')} comparisons skipped (budget)")
    return (
        "<figure><figcaption>Judge: candidate win rate against production, ties counting half, "
        f"with its 95% interval</figcaption>{svg}"
        f'<p class="muted">{"; ".join(facts)}.</p></figure>'
    )


def _bar_rows(
    groups: list[tuple[str, float | None, float | None]], scale: float, fmt: str
) -> tuple[list[str], float]:
    """Horizontal grouped bars: one group per row label, candidate above production."""
    body: list[str] = []
    y, bar_h = 34.0, 14.0
    for label, cand, base in groups:
        body.append(_text(_LABEL_W - 8, y + bar_h + 4, _short(label), "end"))
        for role, value, colour in (
            ("candidate", cand, CANDIDATE),
            ("production", base, PRODUCTION),
        ):
            w = 0.0 if value is None or scale <= 0 else _BAR_W * min(1.0, max(0.0, value / scale))
            shown = "n/a" if value is None else fmt.format(value)
            body.append(
                f'<rect class="bar-{role}" x="{_LABEL_W}" y="{y:.1f}" width="{w:.1f}" '
                f'height="{bar_h}" fill="{colour}"><title>{escape(label)}, {role}: {shown}'
                "</title></rect>"
            )
            body.append(_text(_LABEL_W + w + 5, y + bar_h - 3, shown, extra=' font-size="12"'))
            y += bar_h + 2
        y += 12
    return body, y


def _axis(top: float, bottom: float, scale: float, ticks: list[float], fmt: str) -> list[str]:
    body = []
    for t in ticks:
        x = _LABEL_W + _BAR_W * t / scale
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e8eaed"/>')
        body.append(_text(x, bottom + 14, fmt.format(t), "middle", ' font-size="11"'))
    return body


def pass_rate_chart(suites: list[tuple[str, float | None, float | None]]) -> str:
    """Pass rate per suite, candidate vs production, as grouped horizontal bars on 0..100%."""
    bars, bottom = _bar_rows(suites, 1.0, "{:.1%}")
    grid = _axis(28, bottom - 6, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0], "{:.0%}")
    legend = _legend(_LABEL_W, 16, [("candidate", CANDIDATE), ("production", PRODUCTION)])
    desc = "; ".join(f"{name}: candidate {pct(c)}, production {pct(b)}" for name, c, b in suites)
    height = int(bottom + 16)
    return _svg("chart-passrates", 640, height, "Pass rate per suite", desc, grid + legend + bars)


def _nice_max(value: float) -> float:
    """The smallest round number at or above `value`, so axis ticks are round numbers."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    # Each step divides into four round ticks: 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5 x 10^k.
    for step in (1, 1.2, 1.6, 2, 3, 4, 6, 8, 10):
        if step * exp >= value:
            return float(step * exp)
    return float(10 * exp)


def latency_chart(candidate: dict[str, float | None], production: dict[str, float | None]) -> str:
    """Median and 95th-percentile latency, candidate vs production, in milliseconds."""
    groups = [
        (label, candidate.get(key), production.get(key))
        for label, key in (("p50 latency", "p50_ms"), ("p95 latency", "p95_ms"))
    ]
    values = [v for _, c, b in groups for v in (c, b) if v is not None]
    # Leave room right of the longest bar for its label.
    scale = _nice_max(max(values, default=0.0) * 1.15)
    bars, bottom = _bar_rows(groups, scale, "{:.0f} ms")
    grid = _axis(28, bottom - 6, scale, [scale * i / 4 for i in range(5)], "{:.0f} ms")
    legend = _legend(_LABEL_W, 16, [("candidate", CANDIDATE), ("production", PRODUCTION)])
    desc = "; ".join(
        f"{label}: candidate {'n/a' if c is None else f'{c:.0f} ms'}, "
        f"production {'n/a' if b is None else f'{b:.0f} ms'}"
        for label, c, b in groups
    )
    return _svg(
        "chart-latency", 640, int(bottom + 16), "Latency per request", desc, grid + legend + bars
    )
