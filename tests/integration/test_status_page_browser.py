"""The status page as an operator sees it: served by a real API (uvicorn on a real port, over a
real SQLite workspace holding ten days of versions, aliases, lineage and feedback), opened in
headless Chromium with an admin key.

Uses Debian's /usr/bin/chromium through the Playwright client, as test_report_browser.py does
(`make browser` installs it; CT_LLM_SKIP_BROWSER=1 skips where that is not possible).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_report_browser import CHROMIUM, CHROMIUM_ARGS, _rect, _require_browser

from ct_llm.config import DeployConfig, WorkspaceConfig
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.gateway.server import ApiServerThread
from ct_llm.store.db import session_scope
from ct_llm.store.models import (
    Alias,
    ChatResponse,
    EvalReport,
    FeedbackEvent,
    LineageEvent,
    ModelVersion,
)
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration

TENANT = "acme"
BASE = "smollm2-135m-instruct"
V1, V2, V3 = (f"acme-assistant-v{n}" for n in (1, 2, 3))
HOSTILE = "<script>alert('x')</script>"
# Nothing listens here: the page needs no vLLM.
DEAD_UPSTREAM = "http://127.0.0.1:18219"


@dataclass
class History:
    """What the seeded workspace holds, written down independently of the code under test."""

    now: datetime
    days: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(day, version) -> (thumbs votes, of which down)."""
    ratings: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    changes: list[tuple[datetime, str, str]] = field(default_factory=list)
    """(when, promote | rollback, version)."""


def _day(now: datetime, back: int, hour: int = 0) -> datetime:
    d = (now - timedelta(days=back)).date()
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


def seed_history(ws: Workspace, now: datetime) -> History:
    """Ten days of one tenant: the base model, v1 promoted on day -9, v2 a canary from day -6
    and promoted on day -4, rolled back to v1 on day -2, v3 a canary since yesterday."""
    h = History(now=now)
    served: list[tuple[int, str, int]] = []  # (days back, version, votes that day)
    for back in range(10, 0, -1):  # votes at 20:00, after that day's changes; none today
        served.append((back, BASE if back == 10 else V2 if back in (4, 3) else V1, 40))
        if back in (6, 5):
            served.append((back, V2, 8))  # a 20% canary, few votes: hollow points
        if back == 1:
            served.append((back, V3, 6))
    rows: list[Any] = []
    seq = 0
    for back, version, n in served:
        day = _day(now, back, 20)
        down = {BASE: 0.30, V1: 0.15, V2: 0.40, V3: 0.10}[version]
        n_down = round(n * down)
        key = (day.date().isoformat(), version)
        h.days[key] = (n, n_down)
        h.ratings[key] = [2 + (i % 3) + (version != V2) for i in range(n // 4)]
        for i in range(n):
            seq += 1
            rows.extend(_event(seq, version, "thumbs", i >= n_down, day))
        for r in h.ratings[key]:
            seq += 1
            rows.extend(_event(seq, version, "rating", r, day))
        seq += 1  # an edit: counted as feedback, not a vote
        rows.extend(_event(seq, version, "edit", "A corrected answer.", day))
    # Older than the page's 30 days: must not show.
    rows.extend(_event(seq + 1, V1, "thumbs", False, _day(now, 40)))

    def ev(at: datetime, version: str | None, action: str, outcome: str, **details: Any) -> None:
        rows.append(
            LineageEvent(
                tenant=TENANT,
                model_version=version,
                action=action,
                outcome=outcome,
                actor="cli",
                details=details,
                created_at=at,
            )
        )

    def moved(at: datetime, version: str, frm: str, to: str, reason: str = "") -> None:
        ev(at, version, "transition", to, **{"from": frm, "to": to, "reason": reason})

    t = _day(now, 9, 9)
    moved(t, V1, "approved", "production", "promoted")
    ev(t, V1, "promote", "production", previous=None)
    h.changes.append((t, "promote", V1))
    ev(_day(now, 7, 3), None, "cycle", "skipped", reason="3 new usable feedback events < 8")
    t = _day(now, 6, 12)
    ev(t - timedelta(hours=1), V2, "cycle", "deployed", reason="volume", duration_s=412.5)
    ev(t - timedelta(hours=2), V2, "gate", "approved", report="r-v2", reasons=[])
    moved(t, V2, "approved", "canary", "canary at weight 0.2")
    ev(t, V2, "deploy", "canary", weight=0.2)
    t = _day(now, 4, 8)
    moved(t, V2, "canary", "production", "promoted")
    moved(t, V1, "production", "retired", HOSTILE)
    ev(t, V2, "promote", "production", previous=V1)
    ev(t, V2, "promote", "failed", error="a failed attempt moves nothing")
    h.changes.append((t, "promote", V2))
    t = _day(now, 2, 15)
    moved(t, V1, "retired", "production", "restored by rollback")
    ev(t, V1, "rollback", "restored", alias="production", replaces=V2)
    moved(t, V2, "production", "rejected", "rolled back")
    ev(t, V2, "rollback", "rejected", alias="production", removed=V2, traffic_to=V1)
    h.changes.append((t, "rollback", V2))
    t = _day(now, 1, 6)
    ev(t - timedelta(hours=1), V3, "gate", "approved", report="r-v3", reasons=[])
    moved(t, V3, "approved", "canary", "canary at weight 0.1")
    ev(t, V3, "deploy", "canary", weight=0.1)
    ev(t + timedelta(hours=6), V3, "canary_check", "wait", reasons=["12 votes < 30"])
    triggers = {
        "volume": {"name": "volume", "fired": False, "value": 5, "threshold": 8, "reason": "-"},
        "drift": {"name": "drift", "fired": False, "value": 0.01, "threshold": 0.05},
    }
    ev(
        now - timedelta(hours=3),
        None,
        "cycle",
        "failed:train",
        reason="volume",
        duration_s=31.0,
        error={"stage": "train", "message": "out of memory"},
        triggers=triggers,
    )
    ev(
        now - timedelta(hours=1),
        None,
        "cycle",
        "skipped",
        reason="nothing new",
        triggers=triggers,
        duration_s=0.2,
    )

    versions = [
        (V1, 1, "production"),
        (V2, 2, "rejected"),
        (V3, 3, "canary"),
    ]
    for vid, number, state in versions:
        rows.append(
            ModelVersion(
                id=vid,
                tenant=TENANT,
                kind="adapter",
                number=number,
                path=f"adapters/{vid}",
                state=state,
                info={},
                created_at=_day(now, 10 - number),
            )
        )
    suites = {
        "general": {
            "kind": "regression",
            "candidate_pass_rate": 0.9375,
            "baseline_pass_rate": 1.0,
            "n": 16,
        }
    }
    judge = {"rate": 0.62, "low": 0.51, "high": 0.72, "n": 64}
    for rid, cand, at in (("r-v2", V2, _day(now, 6, 9)), ("r-v3", V3, _day(now, 1, 4))):
        rows.append(
            EvalReport(
                id=rid,
                tenant=TENANT,
                candidate=cand,
                baseline=V1,
                path=f"reports/{rid}",
                summary={"suites": suites, "judge": judge},
                created_at=at,
            )
        )
    rows.append(
        Alias(
            tenant=TENANT,
            name="production",
            model_version=V1,
            weight=1.0,
            updated_at=_day(now, 2, 15),
        )
    )
    rows.append(
        Alias(
            tenant=TENANT, name="canary", model_version=V3, weight=0.1, updated_at=_day(now, 1, 6)
        )
    )
    with session_scope(ws.database_url) as s:
        s.add_all(rows)
    return h


def _event(seq: int, version: str, kind: str, value: Any, at: datetime) -> list[Any]:
    """A feedback event about its own logged answer: a vote by feedback/votes.py's definition,
    which the page's chart counts (one voter per answer, as no end user is logged)."""
    answer = ChatResponse(
        id=f"r{seq}",
        tenant=TENANT,
        messages=[{"role": "user", "content": "hi"}],
        response="hello",
        model_version=version,
        latency_ms=1.0,
        created_at=at,
    )
    event = FeedbackEvent(
        tenant=TENANT,
        event_id=f"e{seq}",
        payload_hash="h",
        kind=kind,
        value=value,
        model_version=version,
        response_id=answer.id,
        created_at=at,
        received_at=at,
    )
    return [answer, event]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, History]]:
    # The canary watcher would act on the seeded canary: off, the page only reads.
    config = WorkspaceConfig(tenant=TENANT, deploy=DeployConfig(canary_check_interval_s=0))
    ws = Workspace.init(tmp_path / "ws", config)
    history = seed_history(ws, datetime.now(timezone.utc))
    key = create_api_key(ws.database_url, TENANT, "admin")
    with ApiServerThread(create_app(ws, DEAD_UPSTREAM), port=_free_port()) as server:
        yield server.url, key, history


def _centre(page: Any, selector: str) -> tuple[float, float]:
    r = _rect(page, selector)
    return r["x"] + r["width"] / 2, r["y"] + r["height"] / 2


@pytest.mark.timeout(180)
def test_status_page_renders_from_the_api_in_chromium(
    served: tuple[str, str, History], tmp_path: Path
) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    base, key, h = served
    url = f"{base}/v1/admin/status.html"
    assert httpx.get(url).status_code == 401  # a browser without the key gets nothing
    requests: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900},
                extra_http_headers={"Authorization": f"Bearer {key}"},
            )
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            response = page.goto(url, wait_until="load")
            assert response is not None and response.status == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]

            assert page.locator("#card-production .big").inner_text() == V1
            assert page.locator("#card-canary .big").inner_text() == V3
            assert "failed:train" not in page.locator("#card-cycle .big").inner_text()
            assert "skipped" in page.locator("#card-cycle .big").inner_text()
            assert "volume 5 / 8" in page.locator("#card-triggers").inner_text()

            thumbs_days = {k for k, (n, _) in h.days.items() if n}
            rating_days = {k for k, r in h.ratings.items() if r}
            for chart, expected in (
                ("#chart-thumbs-down", thumbs_days),
                ("#chart-rating", rating_days),
            ):
                assert page.locator(chart).is_visible()
                points = page.locator(f"{chart} circle.point")
                shown = {
                    (
                        points.nth(i).get_attribute("data-day"),
                        points.nth(i).get_attribute("data-version"),
                    )
                    for i in range(points.count())
                }
                assert points.count() == len(expected) and shown == expected, chart
                # promote v1, promote v2, rollback v2: the failed promote is no change.
                assert page.locator(f"{chart} line.change").count() == 3
                assert page.locator(f"{chart} line.change-rollback").count() == 1

            # Points sit at their rate: v2 on its first production day, 40% thumbs-down.
            day = _day(h.now, 4).date().isoformat()
            _, y0 = _centre(page, '#chart-thumbs-down line.grid[data-value="0"]')
            _, y1 = _centre(page, '#chart-thumbs-down line.grid[data-value="1"]')
            n, down = h.days[(day, V2)]
            _, y = _centre(
                page, f'#chart-thumbs-down circle[data-day="{day}"][data-version="{V2}"]'
            )
            assert (y0 - y) / (y0 - y1) == pytest.approx(down / n, abs=0.01)
            # v2's promotion (08:00) is drawn after the centre of the day before and before
            # the centre of its own day.
            x_promote, _ = _centre(
                page, f'#chart-thumbs-down line.change-promote[data-version="{V2}"]'
            )
            prev = _day(h.now, 5).date().isoformat()
            x_prev, _ = _centre(
                page, f'#chart-thumbs-down circle[data-day="{prev}"][data-version="{V1}"]'
            )
            x_day, _ = _centre(
                page, f'#chart-thumbs-down circle[data-day="{day}"][data-version="{V2}"]'
            )
            assert x_prev < x_promote < x_day

            assert page.locator("#changes tbody tr").count() == 3
            transitions = page.locator("#transitions tbody tr")
            assert transitions.count() == 7
            assert V3 in transitions.first.inner_text()  # newest first
            reports = page.locator("#reports tbody tr")
            assert reports.count() == 2 and "r-v3" in reports.first.inner_text()
            assert page.locator("#cycles tbody tr").count() == 4

            # Hostile text from the store is text, not markup.
            assert page.locator("script, img, iframe, a").count() == 0
            assert HOSTILE in page.locator("#transitions").inner_text()

            shot = tmp_path / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert requests == [url], f"the page fetched something: {requests}"
    assert console_errors == [], console_errors
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
