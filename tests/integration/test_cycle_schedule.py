"""The real `ct-llm schedule` daemon in a subprocess: it checks each tenant on its interval,
records each check, skips a tenant another process is cycling, and exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ct_llm.loop.locks import job_lock
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration


def checks(ws: Workspace, tenant: str) -> int:
    with session_scope(ws.database_url) as s:
        return sum(e.action == "cycle" for e in registry.history(s, tenant))


def wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def test_schedule_runs_checks_per_tenant_and_stops_on_sigterm(empty_workspace: Workspace):
    ws = empty_workspace
    log = ws.root / "schedule.log"
    with job_lock(ws.locks_dir, "cycle", "busy"), log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ct_llm.cli",
                "schedule",
                "--workspace",
                str(ws.root),
                "--interval",
                "0.5",
                "--tenant",
                "acme",
                "--tenant",
                "busy",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            wait_for(lambda: checks(ws, "acme") >= 3)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = Path(log).read_text()
    assert "started: checks every 0.5 s" in text
    assert "acme: trained=False outcome=skipped" in text and "no trigger fired" in text
    assert "busy: busy, skipped (another cycle of tenant 'busy' is running" in text
    assert "signal 15: finishing the running cycles, starting no new one" in text
    assert text.rstrip().endswith("stopped") and "Traceback" not in text
    assert checks(ws, "busy") == 0
    n = checks(ws, "acme")
    time.sleep(1.0)
    assert checks(ws, "acme") == n  # nothing runs after the exit
