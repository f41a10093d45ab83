from __future__ import annotations

import pytest

from ct_llm.bench.ingest import event_body
from ct_llm.bench.load import LoadResult, percentile
from ct_llm.feedback.schema import parse_event


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of arrival does not matter


def test_summary_rates() -> None:
    r = LoadResult(requests=10, events_acknowledged=1000, wall_s=2.0, latencies_ms=[1.0] * 10)
    s = r.summary()
    assert s["events_per_s"] == 500.0 and s["requests_per_s"] == 5.0 and s["p99_ms"] == 1.0


def test_bench_events_are_valid_and_unique() -> None:
    bodies = [event_body("b", n, 100) for n in range(3)]
    events = [e for b in bodies for e in b["events"]]
    assert len({e["event_id"] for e in events}) == 300
    kinds = {parse_event(e).kind for e in events}  # every one passes the real schema
    assert kinds == {"thumbs", "rating", "edit"}


def test_bad_settings_are_refused() -> None:
    from ct_llm.bench.ingest import run_ingest_bench
    from ct_llm.errors import CtLlmError

    with pytest.raises(CtLlmError, match="events >= batch"):
        run_ingest_bench(print, events=10, batch=100)
