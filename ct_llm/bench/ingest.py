"""`ct-llm bench ingest`: ct-llm's feedback endpoint against a naive one, side by side.

Both servers run in their own processes on fresh SQLite workspaces (WAL, `synchronous=FULL`),
one after the other, under the same two workloads:
- batches: `events` events in POSTs of `batch` events, `concurrency` clients (closed loop);
- single: one-event POSTs at `rate` per second for `seconds` (open loop, latency from when each
  request was due).
Afterwards the stored rows are counted, so a server that acknowledged events it did not store
cannot win. Prints one JSON object; progress goes to `log`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ct_llm.bench.load import Body, closed_loop, open_loop
from ct_llm.errors import CtLlmError
from ct_llm.net import free_port

TARGETS = {"batch_events_per_s": 5000.0, "batch_ratio": 5.0, "single_p99_ms": 50.0}
TENANT = "bench"


def event_body(prefix: str, n: int, size: int) -> dict[str, Any]:
    """`size` realistic events (thumbs, ratings, edits on full conversations), unique ids."""
    kinds = [("thumbs", False), ("rating", 4), ("edit", "Our return window is 60 days.")]
    events = []
    for i in range(size):
        kind, value = kinds[(n + i) % len(kinds)]
        events.append(
            {
                "event_id": f"{prefix}-{n}-{i}",
                "kind": kind,
                "value": value,
                "user_id": f"user-{(n * size + i) % 500}",
                "conversation_id": f"conv-{n}",
                "messages": [
                    {"role": "system", "content": "You are the support assistant of a shop."},
                    {"role": "user", "content": f"How long do I have to return item {i}?"},
                ],
                "response": "You can return items within 30 days of delivery.",
            }
        )
    return {"events": events}


class _Server:
    def __init__(self, which: str, root: Path) -> None:
        from ct_llm.gateway.auth import create_api_key
        from ct_llm.workspace import Workspace

        self.which = which
        self.ws = Workspace.init(root / which)
        self.key = create_api_key(self.ws.database_url, TENANT, "ingest")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Server:
        cmd = [sys.executable, "-m", "ct_llm.bench.ingest_server", self.which]
        self.proc = subprocess.Popen([*cmd, str(self.ws.root), str(self.port)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CtLlmError(f"the {self.which} server exited with {self.proc.returncode}")
            try:
                httpx.get(self.url + "/healthz", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise CtLlmError(f"the {self.which} server did not start within 60 s")

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process (Linux); 0.0 where /proc is not there."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():  # type: ignore[union-attr]
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return 0.0

    def stored_events(self) -> int:
        from sqlalchemy import func, select

        from ct_llm.store.db import session_scope
        from ct_llm.store.models import FeedbackEvent

        with session_scope(self.ws.database_url) as s:
            return int(s.scalar(select(func.count()).select_from(FeedbackEvent)) or 0)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _measure(
    which: str,
    root: Path,
    *,
    events: int,
    batch: int,
    concurrency: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    with _Server(which, root) as server:
        headers = {"Authorization": f"Bearer {server.key}"}
        url = server.url + "/v1/feedback"
        batches: Body = lambda n: event_body("b", n, batch)  # noqa: E731
        singles: Body = lambda n: event_body("s", n, 1)  # noqa: E731
        batch_run = asyncio.run(closed_loop(url, headers, batches, events // batch, concurrency))
        single_run = asyncio.run(open_loop(url, headers, singles, rate, seconds))
        acknowledged = batch_run.events_acknowledged + single_run.events_acknowledged
        return {
            "batch": batch_run.summary(),
            "single": single_run.summary(),
            "stored_events": server.stored_events(),
            "acknowledged_events": acknowledged,
            "server_peak_rss_mb": server.peak_rss_mb(),
        }


def run_ingest_bench(
    log: Callable[[str], None],
    *,
    events: int = 10_000,
    batch: int = 100,
    concurrency: int = 8,
    rate: float = 200.0,
    seconds: float = 10.0,
) -> dict[str, Any]:
    if events < batch or batch < 1 or concurrency < 1 or rate <= 0 or seconds <= 0:
        raise CtLlmError(
            "bench ingest: events >= batch >= 1, concurrency >= 1, rate and seconds > 0"
        )
    settings = {
        "events": events,
        "batch": batch,
        "concurrency": concurrency,
        "single_rate_per_s": rate,
        "single_seconds": seconds,
        "database": "sqlite (WAL, synchronous=FULL)",
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-ingest-") as tmp:
        for which in ("baseline", "ours"):
            log(f"{which}: {events} events in batches of {batch}, then {rate:.0f} single posts/s")
            results[which] = _measure(
                which,
                Path(tmp),
                events=events,
                batch=batch,
                concurrency=concurrency,
                rate=rate,
                seconds=seconds,
            )
            log(
                f"{which}: {results[which]['batch']['events_per_s']:.0f} events/s in batches, "
                f"single p99 {results[which]['single']['p99_ms']:.1f} ms"
            )
    ours, base = results["ours"], results["baseline"]
    ratio = ours["batch"]["events_per_s"] / max(base["batch"]["events_per_s"], 1e-9)
    checks = {
        "batch_events_per_s": ours["batch"]["events_per_s"] >= TARGETS["batch_events_per_s"],
        "batch_ratio": ratio >= TARGETS["batch_ratio"],
        "single_p99_ms": ours["single"]["p99_ms"] < TARGETS["single_p99_ms"],
        "single_rate_held": ours["single"]["requests_per_s"] >= 0.95 * rate,
        "nothing_lost": all(
            r["stored_events"] == r["acknowledged_events"] for r in results.values()
        ),
        "no_errors": ours["batch"]["errors"] + ours["single"]["errors"] == 0,
    }
    return {
        "bench": "ingest",
        "settings": settings,
        "baseline": base,
        "ours": ours,
        "ratio_batch_events_per_s": round(ratio, 2),
        "targets": TARGETS,
        "checks": checks,
        "met": all(checks.values()),
    }
