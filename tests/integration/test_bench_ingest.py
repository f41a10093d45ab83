"""`ct-llm bench ingest` end to end at a tiny size: both servers start, every acknowledged event
is stored, and the JSON carries what the closing notes quote. No timing is asserted here: the
figures come from running the benchmark itself."""

from __future__ import annotations

import pytest

from ct_llm.bench.ingest import run_ingest_bench

pytestmark = pytest.mark.integration


def test_bench_ingest_small_run() -> None:
    lines: list[str] = []
    res = run_ingest_bench(lines.append, events=300, batch=100, concurrency=2, rate=20, seconds=1)
    for which in ("baseline", "ours"):
        r = res[which]
        assert r["batch"]["events_acknowledged"] == 300 and r["batch"]["errors"] == 0
        assert r["single"]["requests"] == 20 and r["single"]["errors"] == 0
        assert r["stored_events"] == r["acknowledged_events"] == 320
        assert r["server_peak_rss_mb"] > 0
    assert res["checks"]["nothing_lost"] and res["checks"]["no_errors"]
    assert res["ratio_batch_events_per_s"] > 0
    assert any("events/s in batches" in line for line in lines)
