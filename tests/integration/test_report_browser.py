"""The eval report as a person sees it: report.html opened from file:// in headless Chromium.

Uses Debian's /usr/bin/chromium through the Playwright client (never Playwright's own browser
downloads). `make browser` installs Chromium; CT_LLM_SKIP_BROWSER=1 skips where that is not
possible, otherwise a missing browser fails the test.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
from report_payloads import full_payload

from ct_llm.evals.report import write_report

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = ("chart-winrate", "chart-passrates", "chart-latency")


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package (dev extra)")
    if not missing:
        return
    message = f"missing {' and '.join(missing)}; run `make browser` and `make install`"
    if os.environ.get("CT_LLM_SKIP_BROWSER") == "1":
        pytest.skip(f"CT_LLM_SKIP_BROWSER=1: {message}")
    pytest.fail(message, pytrace=False)


def _rect(page: Any, selector: str) -> dict[str, float]:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; }",
    )


def _centre_x(page: Any, selector: str) -> float:
    r = _rect(page, selector)
    return r["x"] + r["width"] / 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("approved", [False, True])
def test_report_renders_offline_in_chromium(tmp_path: Path, approved: bool) -> None:
    _require_browser()
    from playwright.sync_api import sync_playwright

    payload = full_payload(approved=approved)
    report = write_report(tmp_path / "report", payload) / "report.html"
    url = report.resolve().as_uri()
    requests: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.goto(url, wait_until="load")

            verdict = page.locator("#verdict")
            assert verdict.is_visible()
            word = verdict.locator(".word").inner_text()
            assert word == ("APPROVE" if approved else "REJECT")

            for chart in CHARTS:
                svg = page.locator(f"svg.chart#{chart}")
                assert svg.is_visible(), chart
                box = svg.bounding_box()
                assert box and box["width"] > 100 and box["height"] > 50, (chart, box)

            # The interval's ends sit on the axis where low and high say.
            x0, x1 = _centre_x(page, "#winrate-axis-0"), _centre_x(page, "#winrate-axis-1")
            judge = payload["judge"]
            for cap, value in (
                ("#winrate-low", judge["low"]),
                ("#winrate-high", judge["high"]),
                ("#winrate-point", judge["rate"]),
            ):
                assert (_centre_x(page, cap) - x0) / (x1 - x0) == pytest.approx(value, abs=0.01)

            # Bars are as long as the pass rates: general is 15/16 against production's 16/16.
            cand = _rect(page, "#chart-passrates rect.bar-candidate")
            prod = _rect(page, "#chart-passrates rect.bar-production")
            assert cand["width"] / prod["width"] == pytest.approx(15 / 16, abs=0.01)

            # Hostile model text is shown as text, not turned into elements.
            assert page.locator("img, script, a, iframe").count() == 0
            assert "<script>alert('x')</script>" in page.locator("body").inner_text()

            shot = tmp_path / f"report-{'approve' if approved else 'reject'}.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert requests == [url], f"the report fetched something: {requests}"
    assert console_errors == [], console_errors
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
