"""Inline SVG for the status page: one line per model version over days, with the days a
version change took effect marked. Plain functions from numbers to markup, no script.

Drawn like the eval report's charts (evals/report_charts.py, whose SVG frame and legend are
reused): every chart has a `<title>` and `<desc>` that state its numbers, each point carries its
value and vote count as a tooltip, and every label is escaped (version names come from the
store). A point backed by few votes is drawn hollow: one thumbs-down out of three votes is a 33%
day that means little.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

from ct_llm.evals.report_charts import _legend, _svg
from ct_llm.monitor.quality import Point
from ct_llm.monitor.timeline import VersionChange

# Green and red are kept for the promote and rollback marks, so no version line is drawn in them.
PALETTE = ("#1a62c9", "#e8710a", "#9334e6", "#d01884", "#12b5cb", "#8d6e63", "#5f6368")
CHANGE_COLOURS = {"promote": "#1e8e3e", "rollback": "#d93025"}
FEW_VOTES = 10
"""Below this many votes a day's point is hollow."""

_WIDTH, _LEFT, _RIGHT, _TOP, _PLOT_H = 760, 56.0, 16.0, 48.0, 180.0


def _text(
    x: float,
    y: float,
    label: str,
    anchor: str = "start",
    *,
    size: int = 11,
    fill: str = "#202124",
    bold: bool = False,
) -> str:
    weight = ' font-weight="700"' if bold else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}"{weight}>{escape(label)}</text>'
    )


def version_colours(versions: list[str]) -> dict[str, str]:
    """A colour per version, in the order given (the palette repeats past seven versions)."""
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(versions)}


def _wrapped_legend(y: float, items: list[tuple[str, str]]) -> tuple[list[str], float]:
    """The legend in as many rows as the width needs (version names can be long); returns the
    markup and the baseline of its last row."""
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0.0
    for label, colour in items:
        width = 30 + 7.5 * len(label)  # the width _legend gives an item
        if rows[-1] and used + width > _WIDTH - _LEFT - _RIGHT:
            rows.append([])
            used = 0.0
        rows[-1].append((label, colour))
        used += width
    body = []
    for n, row in enumerate(rows):
        body += _legend(_LEFT, y + 20 * n, row)
    return body, y + 20 * (len(rows) - 1)


def _x_labels(days: list[str], at: Callable[[int, float], float], bottom: float) -> list[str]:
    step = max(1, math.ceil(len(days) / 8))
    out = []
    for i in range(0, len(days), step):
        out.append(_text(at(i, 0.5), bottom + 16, days[i][5:], "middle"))
    return out


def _change_marks(
    changes: list[VersionChange], index: dict[str, int], at: Callable[[int, float], float]
) -> list[str]:
    """A dashed line per change, topped by its number in a disc; the numbers are explained in
    the key below the chart (names are too long to sit beside lines a day apart)."""
    body = []
    previous_x, row = -1e9, 0
    for n, c in enumerate(changes, start=1):
        if c.day not in index:
            continue
        x = at(index[c.day], c.day_fraction)
        # Discs of changes close together alternate between two heights instead of overlapping.
        row = 1 - row if x - previous_x < 20 else 0
        previous_x = x
        disc_y = _TOP - 14 - 20 * row
        colour = CHANGE_COLOURS.get(c.action, "#5f6368")
        tip = f"{n}: {c.label}, {c.when} by {c.actor}"
        if c.action == "rollback":
            tip += f", traffic to {c.traffic_to or 'the base model'}"
        body.append(
            f'<line class="change change-{escape(c.action)}" data-version="{escape(c.version)}" '
            f'data-n="{n}" x1="{x:.1f}" y1="{disc_y:.1f}" x2="{x:.1f}" y2="{_TOP + _PLOT_H}" '
            f'stroke="{colour}" stroke-width="2" stroke-dasharray="5 3">'
            f"<title>{escape(tip)}</title></line>"
        )
        body.append(f'<circle cx="{x:.1f}" cy="{disc_y:.1f}" r="8" fill="{colour}"/>')
        body.append(_text(x, disc_y + 4, str(n), "middle", fill="#fff", bold=True))
    return body


def _change_key(
    changes: list[VersionChange], index: dict[str, int], y: float
) -> tuple[list[str], float]:
    """One line per numbered change (what happened, when, by whom) from baseline `y`; returns
    the markup and the baseline of the last line."""
    body: list[str] = []
    last = y - 17
    for n, c in enumerate(changes, start=1):
        if c.day in index:
            colour = CHANGE_COLOURS.get(c.action, "#5f6368")
            body.append(_text(_LEFT, y, f"{n}", size=12, fill=colour, bold=True))
            body.append(_text(_LEFT + 16, y, f"{c.label}, {c.when} by {c.actor}", size=12))
            last, y = y, y + 17
    return body, last


def quality_chart(
    chart_id: str,
    title: str,
    days: list[str],
    series: dict[str, list[Point]],
    changes: list[VersionChange],
    colours: dict[str, str],
    *,
    y_range: tuple[float, float],
    ticks: list[float],
    fmt: str,
) -> str:
    """One line per version over `days` (ISO dates, consecutive), a point per day with votes,
    lines broken where a version has no votes for a day, and a dashed mark per version change
    at the time of day it happened. `fmt` formats values (e.g. "{:.0%}")."""
    plot_w = _WIDTH - _LEFT - _RIGHT
    slot = plot_w / max(1, len(days))
    bottom = _TOP + _PLOT_H
    lo, hi = y_range
    index = {d: i for i, d in enumerate(days)}

    def at(i: int, frac: float) -> float:
        return _LEFT + (i + frac) * slot

    def y_of(v: float) -> float:
        return bottom - _PLOT_H * (min(hi, max(lo, v)) - lo) / (hi - lo)

    body = []
    right = _WIDTH - _RIGHT
    for t in ticks:
        y = y_of(t)
        body.append(
            f'<line class="grid" data-value="{t:g}" x1="{_LEFT}" y1="{y:.1f}" x2="{right}" '
            f'y2="{y:.1f}" stroke="#e8eaed"/>'
        )
        body.append(_text(_LEFT - 6, y + 4, fmt.format(t), "end"))
    body.append(f'<line x1="{_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#5f6368"/>')
    body += _x_labels(days, at, bottom)
    body += _change_marks(changes, index, at)
    shown = {v: [(index[d], x, n) for d, x, n in pts if d in index] for v, pts in series.items()}
    for version, kept in shown.items():
        colour = colours.get(version, PALETTE[-1])
        runs: list[list[tuple[int, float, int]]] = []
        for p in kept:
            if runs and p[0] == runs[-1][-1][0] + 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        for run in runs:
            if len(run) > 1:
                xy = " ".join(f"{at(i, 0.5):.1f},{y_of(v):.1f}" for i, v, _ in run)
                body.append(
                    f'<polyline class="line" data-version="{escape(version)}" points="{xy}" '
                    f'fill="none" stroke="{colour}" stroke-width="2"/>'
                )
        for i, v, n in kept:
            fill = "#fff" if n < FEW_VOTES else colour
            day = escape(days[i])
            body.append(
                f'<circle class="point" data-version="{escape(version)}" data-day="{day}" '
                f'cx="{at(i, 0.5):.1f}" cy="{y_of(v):.1f}" r="4" fill="{fill}" '
                f'stroke="{colour}" stroke-width="2"><title>{escape(version)}, {day}: '
                f"{escape(fmt.format(v))} ({n} votes)</title></circle>"
            )
    legend_items = [(v, c) for v, c in colours.items() if v in series]
    legend_items += [(v, PALETTE[-1]) for v in series if v not in colours]
    legend_items += [(f"{a} (dashed)", c) for a, c in CHANGE_COLOURS.items()]
    legend, legend_bottom = _wrapped_legend(bottom + 40, legend_items)
    body += legend
    note = f"hollow point: fewer than {FEW_VOTES} votes that day"
    body.append(_text(_LEFT, legend_bottom + 18, note, fill="#5f6368"))
    key, key_bottom = _change_key(changes, index, legend_bottom + 40)
    body += key
    desc = "; ".join(
        f"{v}: {len(pts)} days, last {fmt.format(pts[-1][1])} on {days[pts[-1][0]]}"
        for v, pts in shown.items()
        if pts
    )
    marks = [f"{n}: {c.label}, {c.when}" for n, c in enumerate(changes, 1) if c.day in index]
    desc = (desc or "no votes in this period") + ("; " + "; ".join(marks) if marks else "")
    return _svg(chart_id, _WIDTH, int(max(legend_bottom + 18, key_bottom) + 10), title, desc, body)
