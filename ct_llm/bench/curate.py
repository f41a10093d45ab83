"""`ct-llm bench curate`: curation end to end on synthetic chatbot feedback, at two sizes.

For each size (by default 100k and 1M events) a fresh SQLite workspace is filled with the
synthetic feedback of `bench/feedback_data.py` (not timed), then `ct-llm curate` runs in a
child process of its own, so its peak RSS is curation's alone: read from the store, pairing
rules, PII scrub, validation, exact + near dedup, cap, split, Parquet + manifest. The baseline,
run on the same store, is the pre-streaming way of reading the feedback: every event loaded as
an ORM object with its response, in memory at once, before any rule runs (the reading the old
`curate` did); it does none of the later work, so it is a floor for time and a ceiling nobody
should want for memory.

Prints one JSON object with events/s, peak RSS and the time ratio between the sizes.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = {"events_per_s": 20_000.0, "peak_rss_mib": 2048.0, "time_ratio_10x": 12.0}
TENANT = "bench"


def _child(mode: str, root: Path) -> dict[str, Any]:
    """Run one measured step in a fresh interpreter; it reports its own peak RSS."""
    proc = subprocess.run(
        [sys.executable, "-m", "ct_llm.bench.curate", mode, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench step '{mode}' failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _prepare(root: Path, events: int, seed: int) -> int:
    from ct_llm.bench.feedback_data import load_into
    from ct_llm.config import WorkspaceConfig
    from ct_llm.workspace import Workspace

    ws = Workspace.init(root, WorkspaceConfig.model_validate({"tenant": TENANT}))
    return load_into(ws.database_url, events, seed=seed)


def _measure_ours(root: Path) -> dict[str, Any]:
    from ct_llm.curate.dataset import curate_dataset
    from ct_llm.workspace import Workspace

    ws = Workspace.open(root)
    t0 = time.perf_counter()
    res = curate_dataset(ws, TENANT)
    seconds = time.perf_counter() - t0
    m = res.manifest
    return {
        "seconds": round(seconds, 2),
        "events": m["source_events"]["count"],
        "rows": {k: sum(v.values()) for k, v in m["counts"].items()},
        "drops": m["drops"],
        "pii_scrubbed": m["pii_scrubbed"],
        "parquet_bytes": sum(p.stat().st_size for p in res.path.rglob("*.parquet")),
    }


def _measure_baseline(root: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from ct_llm.store.db import session_scope
    from ct_llm.store.models import ChatResponse, FeedbackEvent
    from ct_llm.workspace import Workspace

    ws = Workspace.open(root)
    t0 = time.perf_counter()
    with session_scope(ws.database_url) as s:
        rows = s.execute(
            select(FeedbackEvent, ChatResponse)
            .outerjoin(ChatResponse, ChatResponse.id == FeedbackEvent.response_id)
            .where(FeedbackEvent.tenant == TENANT)
            .order_by(FeedbackEvent.seq)
        ).all()
        n = len(rows)
    return {"seconds": round(time.perf_counter() - t0, 2), "events": n}


def run_curate_bench(
    log: Callable[[str], None], sizes: tuple[int, ...] = (100_000, 1_000_000), seed: int = 0
) -> dict[str, Any]:
    results: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-curate-") as tmp:
        for size in sizes:
            root = Path(tmp) / f"ws-{size}"
            log(f"writing {size:,} synthetic feedback events (not timed)...")
            _prepare(root, size, seed)
            log(f"baseline: loading {size:,} events as ORM objects...")
            base = _child("baseline", root)
            log(f"ct-llm curate on {size:,} events...")
            ours = _child("ours", root)
            ours["events_per_s"] = round(ours["events"] / ours["seconds"])
            base["events_per_s"] = round(base["events"] / base["seconds"])
            results["sizes"][str(size)] = {"ours": ours, "baseline_read_only": base}
            log(
                f"  ours: {ours['seconds']} s, {ours['events_per_s']:,} events/s, peak RSS "
                f"{ours['peak_rss_mib']} MiB; baseline read only: {base['seconds']} s, "
                f"{base['peak_rss_mib']} MiB"
            )
    if len(sizes) >= 2:
        small, large = (results["sizes"][str(s)]["ours"] for s in (sizes[0], sizes[-1]))
        results["scale"] = {
            "events_ratio": round(sizes[-1] / sizes[0], 1),
            "time_ratio": round(large["seconds"] / small["seconds"], 2),
            "rss_ratio": round(large["peak_rss_mib"] / small["peak_rss_mib"], 2),
        }
    largest = results["sizes"][str(sizes[-1])]["ours"]
    results["targets"] = TARGETS
    results["meets"] = {
        "events_per_s": largest["events_per_s"] >= TARGETS["events_per_s"],
        "peak_rss_mib": largest["peak_rss_mib"] < TARGETS["peak_rss_mib"],
        **(
            {"time_ratio_10x": results["scale"]["time_ratio"] <= TARGETS["time_ratio_10x"]}
            if "scale" in results and results["scale"]["events_ratio"] == 10
            else {}
        ),
    }
    return results


if __name__ == "__main__":  # a measured step, run by _child in a fresh interpreter
    mode, root = sys.argv[1], Path(sys.argv[2])
    step = _measure_ours if mode == "ours" else _measure_baseline
    result = step(root)
    # The whole process's peak (interpreter and imports included), in MiB (Linux: KiB units).
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
