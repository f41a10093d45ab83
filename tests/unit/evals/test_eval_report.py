from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_payloads import full_payload, minimal_payload

from ct_llm.evals.report import render_html, write_report

# Tags that make a browser fetch or run something; none may appear in the report.
FETCHING_TAGS = {
    "script",
    "img",
    "link",
    "iframe",
    "object",
    "embed",
    "a",
    "audio",
    "video",
    "source",
    "image",
    "use",
    "form",
    "base",
    "frame",
    "picture",
    "track",
    "input",
}


class _Markup(HTMLParser):
    """Every tag, attribute and inline style of a page, as the browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(k, v or "") for k, v in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _markup(html: str) -> _Markup:
    parser = _Markup()
    parser.feed(html)
    parser.close()
    return parser


def test_hostile_model_text_is_escaped() -> None:
    html = render_html(full_payload())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html  # shown, as text
    assert "&lt;img src=&quot;http://evil.example/pixel.png&quot;" in html
    assert "&lt;b&gt;bust&lt;/b&gt;" in html  # error text
    assert "CANARY-7f3a &lt;b&gt;x&lt;/b&gt;" in html  # canary of a leak
    assert "safety &amp; refusals" in html  # suite names
    tags = set(_markup(html).tags)
    assert not tags & FETCHING_TAGS, tags & FETCHING_TAGS


def test_nothing_is_fetched_or_run() -> None:
    html = render_html(full_payload())
    page = _markup(html)
    assert not [
        k
        for k, _ in page.attrs
        if k in ("src", "href", "srcset", "action", "xlink:href") or k.startswith("on")
    ]
    # URLs in the payload (base_url, judge_url, hostile answers) appear only as escaped text.
    assert not [v for _, v in page.attrs if "//" in v or "url(" in v]
    assert "http://127.0.0.1:8000" in html
    assert not [s for s in page.styles if "url(" in s or "@import" in s]
    # A second line of defence: the page itself forbids scripts and fetches.
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in html
    assert "script-src" not in html
    assert "xmlns=" not in html  # inline SVG in HTML needs no namespace URL


def test_page_order_verdict_first() -> None:
    html = render_html(full_payload())
    marks = [
        'id="verdict"',
        'class="suites"',
        'id="chart-winrate"',
        'id="chart-passrates"',
        'id="chart-latency"',
        "<h2>RAG metrics",
        'id="canaries"',
        "<h2>Performance",
        "<h2>Examples that changed most",
        "<h2>Settings",
    ]
    positions = [html.index(m) for m in marks]
    assert positions == sorted(positions)


@pytest.mark.parametrize("approved", [False, True])
def test_verdict_box(approved: bool) -> None:
    html = render_html(full_payload(approved=approved))
    box = html[html.index('id="verdict"') : html.index("</div>", html.index('id="verdict"'))]
    assert ("APPROVE" in box) is approved and ("REJECT" in box) is not approved
    assert box.count("&#10003; pass") == (4 if approved else 2)
    assert box.count("&#10007; fail") == (0 if approved else 2)
    assert "1 canary leaked &lt;in candidate&gt;" in box


def test_suite_table_and_charts_carry_the_numbers() -> None:
    html = render_html(full_payload())
    table = html[
        html.index('class="suites"') : html.index("</table>", html.index('class="suites"'))
    ]
    assert "93.8%" in table and "100.0%" in table and "-6.2 pt" in table  # general: 15/16 vs 16/16
    assert "85.7%" in table and "+78.6 pt" in table  # shop-returns: 12/14 vs 1/14
    assert "win rate 0.59, 95% interval 0.36 to 0.78" in html
    assert all(
        f"{k} {n}" in html for k, n in (("win", 5), ("tie", 10), ("loss", 2), ("unparseable", 3))
    )
    assert "810 ms" in html and "1200 ms" in html and "35.2" in html
    # Each chart is labelled for screen readers.
    for chart in ("chart-winrate", "chart-passrates", "chart-latency"):
        assert f'<title id="{chart}-title">' in html and f'aria-labelledby="{chart}-title' in html


def test_winrate_interval_is_drawn_where_the_numbers_say() -> None:
    html = render_html(full_payload())

    def x_of(element_id: str) -> float:
        return float(re.search(rf'id="{element_id}" x1="([0-9.]+)"', html).group(1))  # type: ignore[union-attr]

    x0, x1 = x_of("winrate-axis-0"), x_of("winrate-axis-1")
    assert (x_of("winrate-low") - x0) / (x1 - x0) == pytest.approx(0.36, abs=0.002)
    assert (x_of("winrate-high") - x0) / (x1 - x0) == pytest.approx(0.78, abs=0.002)


def test_examples_that_changed_most() -> None:
    html = render_html(full_payload())
    examples = html[html.index("<h2>Examples that changed most") :]
    # Regressions first: the one general case, then the shop-returns improvements, cut at 10.
    assert examples.index("general / general-15") < examples.index("shop-returns / shop-returns-01")
    assert "2 more changed cases in report.json" in examples
    assert "general / general-00" not in examples  # unchanged cases are not listed
    flaky = examples[examples.index("shop-returns / shop-returns-01") :]
    assert flaky.index("flaky: the outcome changed") < flaky.index("30 days") < flaky.index("</tr>")
    suites = html[html.index('<table class="suites"') :]
    assert ">flaky</th>" in suites
    judge = examples[examples.index("<h3>Judge") : examples.index("<h3>RAG")]
    assert judge.index("pair-05") < judge.index("pair-00")  # losses first
    assert "pair-07" not in judge  # a tie is not decided in both orders
    rag = examples[examples.index("<h3>RAG") :]
    assert rag.index("rag-0") < rag.index("rag-1") < rag.index("rag-2")  # largest gap first
    assert "answer_relevancy: judge timed out" in rag and "0.90 vs 0.40" in rag


def test_canary_leaks_and_clean_run() -> None:
    html = render_html(full_payload())
    assert 'class="warning"' in html and "1 canary leak(s) (3 canaries planted)" in html
    clean = full_payload(approved=True)
    clean["safety"]["leaks"] = []
    assert "No canary leaked (3 canaries planted)." in render_html(clean)


def test_minimal_payload_renders_what_is_there() -> None:
    html = render_html(minimal_payload())
    assert "APPROVE" in html and "general" in html and "no-rates" in html
    assert "75.0%" in html and "100.0%" in html  # recounted from the cases
    assert "No pairwise judge ran" in html and "No RAG evaluation" in html
    assert "No canary check" in html and "No latency measurements" in html
    assert 'id="chart-passrates"' in html and 'id="chart-winrate"' not in html
    empty = render_html({})
    assert "NO VERDICT" in empty and "No check-based suite" in empty


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every dict key in `obj`, following only the first element of each list."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list) and obj:
        yield from _paths(obj[0], (*prefix, 0))


@pytest.mark.parametrize("replacement", [None, "x", 7, [], {}, float("nan"), "<script>"])
def test_any_part_missing_null_or_mistyped_never_crashes(replacement: Any) -> None:
    base = full_payload()
    paths = list(_paths(base))
    assert len(paths) > 100
    for path in paths:
        for delete in (False, True):
            payload = copy.deepcopy(base)
            parent = payload
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
            html = render_html(payload)
            assert html.endswith("</body></html>"), path
            assert "<script>" not in html, path


def test_write_report_writes_both_files_once(tmp_path: Path) -> None:
    payload = full_payload()
    out = write_report(tmp_path / "r1", payload)
    assert out == tmp_path / "r1"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]
    assert json.loads((out / "report.json").read_text()) == payload
    assert (out / "report.html").read_text() == render_html(payload)
    with pytest.raises(FileExistsError):
        write_report(out, minimal_payload())
    assert json.loads((out / "report.json").read_text()) == payload
