"""The scheduler's rules, on a real SQLite workspace: which tenants, busy tenants skipped,
a failing tenant never stops it, and a signal lets the running cycle finish and starts no other.

The shutdown test runs a stand-in cycle that takes a second, so the signal lands while it runs;
the real `ct-llm schedule` in a subprocess is tests/integration/test_cycle_schedule.py."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from ct_llm.gateway.auth import create_api_key
from ct_llm.loop.locks import job_lock
from ct_llm.loop.schedule import Scheduler, tenants_to_run
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent


class Recorder:
    """A stand-in cycle: notes when each tenant's cycle started and ended."""

    def __init__(self, seconds: float = 0.0, fail: set[str] | None = None) -> None:
        self.seconds, self.fail = seconds, fail or set()
        self.events: list[tuple[str, str, float]] = []
        self.started = threading.Event()

    def __call__(self, ws: Any, tenant: str, **_: Any) -> dict[str, Any]:
        self.events.append(("start", tenant, time.monotonic()))
        self.started.set()
        time.sleep(self.seconds)
        if tenant in self.fail:
            raise RuntimeError("boom")
        self.events.append(("end", tenant, time.monotonic()))
        return {"trained": False, "outcome": "skipped", "reason": "test"}


def test_sigterm_finishes_the_running_cycle_and_starts_no_new_one(empty_workspace):
    logs: list[str] = []
    cycle = Recorder(seconds=1.0)
    sched = Scheduler(
        empty_workspace,
        tenants=["a", "b"],
        interval_s=0.2,
        max_parallel=1,
        log=logs.append,
        cycle=cycle,
    )

    def stop_when_a_runs() -> None:
        cycle.started.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=stop_when_a_runs)
    killer.start()
    before = signal.getsignal(signal.SIGTERM)
    began = time.monotonic()
    sched.run()
    killer.join()
    assert [(e, t) for e, t, _ in cycle.events] == [("start", "a"), ("end", "a")], logs
    assert time.monotonic() - began >= 1.0  # it waited for a's cycle
    text = "\n".join(logs)
    assert "signal 15: finishing the running cycles" in text
    assert "b: not started, shutting down" in text and text.endswith("stopped")
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_a_tenant_still_running_is_skipped_for_that_tick(empty_workspace):
    logs: list[str] = []
    cycle = Recorder(seconds=0.5)
    sched = Scheduler(empty_workspace, tenants=["a"], log=logs.append, cycle=cycle)
    assert sched.tick() == ["a"]
    cycle.started.wait(5)
    assert sched.tick() == []
    sched.run(once=True, install_signals=False)  # waits for the first one, then a second
    assert any("a: its previous cycle is still running; skipped this tick" in m for m in logs)


def test_a_tenant_busy_in_another_process_is_skipped(empty_workspace):
    logs: list[str] = []
    sched = Scheduler(empty_workspace, tenants=["a", "b"], log=logs.append)  # the real cycle
    with job_lock(empty_workspace.locks_dir, "cycle", "a"):
        sched.run(once=True, install_signals=False)
    text = "\n".join(logs)
    assert "a: busy, skipped (another cycle of tenant 'a' is running" in text
    assert "b: trained=False outcome=skipped" in text


def test_a_failing_tenant_does_not_stop_the_others(empty_workspace):
    logs: list[str] = []
    cycle = Recorder(fail={"a"})
    sched = Scheduler(empty_workspace, tenants=["a", "b"], log=logs.append, cycle=cycle)
    sched.run(once=True, install_signals=False)
    assert ("end", "b") in [(e, t) for e, t, _ in cycle.events]
    assert any("a: cycle crashed: RuntimeError: boom" in m for m in logs)


def test_which_tenants(empty_workspace):
    ws = empty_workspace
    assert tenants_to_run(ws, [], False) == ["default"]
    ws.config.schedule.tenants = ["y", "x"]
    assert tenants_to_run(ws, [], False) == ["x", "y"]
    assert tenants_to_run(ws, ["z", "z"], True) == ["z"]  # flags win
    create_api_key(ws.database_url, "acme", "ingest")
    with session_scope(ws.database_url) as s:
        s.add(
            FeedbackEvent(
                tenant="globex", event_id="e", payload_hash="h", kind="thumbs", value=True
            )
        )
    assert tenants_to_run(ws, [], True) == ["acme", "globex"]
    ws.config.schedule.all_tenants = True
    assert tenants_to_run(ws, [], False) == ["acme", "globex"]


def test_bad_interval_is_a_clear_error(empty_workspace):
    from ct_llm.errors import ConfigError

    with pytest.raises(ConfigError, match="positive number of seconds"):
        Scheduler(empty_workspace, interval_s=0, log=print)
