"""The status page's chart and HTML from plain data (pure): what is drawn, what is escaped,
what a page with nothing to show says."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from ct_llm.monitor.charts import FEW_VOTES, quality_chart, version_colours
from ct_llm.monitor.page import render_status_page
from ct_llm.monitor.timeline import VersionChange

HOSTILE = '<img src=x onerror="alert(1)">'
DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05"]


class Tags(HTMLParser):
    """Counts start tags with their attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def of(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and (cls is None or cls in (a.get("class") or "").split())
        ]


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def chart(changes: list[VersionChange], series: dict[str, list[Any]]) -> Tags:
    svg = quality_chart(
        "chart-x",
        "t",
        DAYS,
        series,
        changes,
        version_colours(list(series)),
        y_range=(0.0, 1.0),
        ticks=[0.0, 0.5, 1.0],
        fmt="{:.0%}",
    )
    return parse(svg)


def test_points_lines_and_marks() -> None:
    series = {
        # Days 1, 2, then a gap, then 4, 5: two line segments, four points.
        "v1": [
            ("2026-01-01", 0.1, 40),
            ("2026-01-02", 0.2, 40),
            ("2026-01-04", 0.3, 3),
            ("2026-01-05", 0.3, 40),
        ],
        "v2": [("2026-01-03", 0.5, 50), ("2025-12-01", 0.9, 50)],  # out of range: not drawn
    }
    changes = [
        VersionChange("2025-12-20T00:00:00+00:00", "promote", "v0", "v0", "cli"),  # before
        VersionChange("2026-01-03T06:00:00+00:00", "promote", "v2", "v2", "cli"),
        VersionChange("2026-01-04T12:00:00+00:00", "rollback", "v2", "v1", "cli"),
    ]
    tags = chart(changes, series)
    points = tags.of("circle", "point")
    assert len(points) == 5
    assert {(p["data-version"], p["data-day"]) for p in points} == {
        ("v1", "2026-01-01"),
        ("v1", "2026-01-02"),
        ("v1", "2026-01-04"),
        ("v1", "2026-01-05"),
        ("v2", "2026-01-03"),
    }
    few = [p for p in points if p["data-day"] == "2026-01-04"][0]
    assert few["fill"] == "#fff", f"a day with < {FEW_VOTES} votes is hollow"
    assert len(tags.of("polyline", "line")) == 2
    marks = tags.of("line", "change")
    assert [(m["data-version"], m["data-n"]) for m in marks] == [("v2", "2"), ("v2", "3")]
    assert len(tags.of("line", "change-rollback")) == 1
    # The promotion at 06:00 on day 3 sits a quarter into that day's slot, left of its point.
    x_mark = float(marks[0]["x1"] or 0)
    x_point = float([p for p in points if p["data-version"] == "v2"][0]["cx"] or 0)
    x_day2 = float([p for p in points if p["data-day"] == "2026-01-02"][0]["cx"] or 0)
    slot = x_point - x_day2
    assert abs((x_point - x_mark) / slot - 0.25) < 0.01


def test_hostile_names_stay_text() -> None:
    change = VersionChange("2026-01-02T06:00:00+00:00", "promote", HOSTILE, HOSTILE, HOSTILE)
    svg_tags = chart([change], {HOSTILE: [("2026-01-01", 0.5, 20)]})
    assert svg_tags.of("img") == [] and svg_tags.of("script") == []


def test_an_empty_payload_renders_and_says_what_is_missing() -> None:
    html = render_status_page({})
    tags = parse(html)
    assert tags.of("script") == [] and tags.of("svg") == []
    csp = [a for a in tags.of("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")
    for text in ("No votes", "No promotion or rollback", "No eval report yet", "No cycle"):
        assert text in html, text


def test_page_escapes_store_text_and_shows_the_numbers() -> None:
    payload = {
        "tenant": HOSTILE,
        "generated_at": "2026-01-05T12:00:00+00:00",
        "first_day": "2026-01-01",
        "last_day": "2026-01-05",
        "status": {
            "production": "v1",
            "base_model": "base",
            "canary": {"version": HOSTILE, "weight": 0.1, "since": "x", "last_check": None},
            "last_cycle": {"at": "2026-01-05T11:00:00", "outcome": "failed:train",
                           "reason": HOSTILE, "duration_s": 3.25},
            "triggers": {HOSTILE: {"value": 1, "threshold": 2, "fired": False}},
            "feedback": {"total": 3, "by_kind": {"thumbs": 3}},
            "versions": [{"version": "v1", "state": "production"}],
        },
        "quality": [
            {"day": "2026-01-02", "version": "v1", "thumbs": 4, "thumbs_down": 1,
             "thumbs_down_rate": 0.25, "ratings": 0, "mean_rating": None},
        ],
        "changes": [
            {"at": "2026-01-03T10:00:00+00:00", "action": "promote", "version": "v1",
             "traffic_to": "v1", "actor": HOSTILE},
        ],
        "transitions": [{"at": "t", "version": "v1", "from": "canary", "to": "production",
                         "actor": "cli", "reason": HOSTILE}],
        "reports": [{"id": "r1", "candidate": "v1", "baseline": "base", "verdict": "rejected",
                     "failed_rules": ["judge"], "suites": [], "judge": None}],
        "cycles": [{"at": "2026-01-05T11:00:00", "outcome": "failed:train", "duration_s": 3.25,
                    "error": {"message": HOSTILE}}],
    }  # fmt: skip
    html = render_status_page(payload)
    tags = parse(html)
    assert tags.of("img") == [] and tags.of("script") == []
    assert html.count("&lt;img src=x") >= 6
    assert len(tags.of("circle", "point")) == 1  # no rating that day: only the thumbs point
    assert len(tags.of("line", "change")) == 2  # one per chart
    assert "3.2 s" in html and "25.0%" in html and "failed: judge" in html
    # A failed outcome is styled as a failure.
    assert re.search(r'class="badge failed-train"', html)
