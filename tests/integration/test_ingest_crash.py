"""Durability: `ct-llm api` is killed with SIGKILL, again and again, while clients send feedback
and retry what was not acknowledged. Every acknowledged event must be stored exactly once.
Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ct_llm.config import WorkspaceConfig
from ct_llm.gateway.auth import create_api_key
from ct_llm.net import free_port
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration

CLIENTS, BATCH = 4, 25
KILLS = 3


class Api:
    """`ct-llm api` in its own process group, without a model server (feedback only)."""

    def __init__(self, ws: Workspace, port: int, log: Path) -> None:
        self.ws, self.port, self.log = ws, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "ct_llm.cli", "api", "-w", str(self.ws.root)]
        cmd += ["--port", str(self.port), "--upstream", "http://127.0.0.1:9"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("ct-llm api did not start")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Client(threading.Thread):
    """Sends new batches until told to finish; retries each batch (same event ids) until it is
    acknowledged, as a well-behaved chatbot backend does."""

    def __init__(self, url: str, key: str, n: int, finish: threading.Event) -> None:
        super().__init__()
        self.url, self.key, self.n, self.finish = url, key, n, finish
        self.acked: list[str] = []
        self.failures = 0
        self.error: BaseException | None = None
        """What ended the thread early (a failed assert in a thread only ends that thread: the
        test re-raises it)."""

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(headers=headers, timeout=10) as http:
                b = 0
                while not self.finish.is_set():
                    self._send_until_acked(http, [f"c{self.n}-b{b}-e{i}" for i in range(BATCH)])
                    b += 1
        except BaseException as e:
            self.error = e

    def _send_until_acked(self, http: httpx.Client, ids: list[str]) -> None:
        body = {"events": [_event(e, i) for i, e in enumerate(ids)]}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                r = http.post(self.url, json=body)
            except httpx.HTTPError:
                self.failures += 1
                time.sleep(0.05)
                continue
            if r.status_code == 200:
                answer = r.json()
                assert answer["rejected"] == [], answer
                assert answer["accepted"] + answer["duplicates"] == BATCH
                self.acked.extend(ids)
                return
            assert r.status_code >= 500, r.text  # never a 4xx for a valid retry
            self.failures += 1
            time.sleep(0.05)
        raise AssertionError(f"batch {ids[0]} was never acknowledged")


def _event(event_id: str, i: int) -> dict[str, object]:
    return {
        "event_id": event_id,
        "kind": "thumbs",
        "value": i % 2 == 0,
        "messages": [{"role": "user", "content": "Hi?"}],
        "response": "Hello!",
    }


def test_acknowledged_events_survive_sigkill(tmp_path: Path, database_url: str | None) -> None:
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(database_url=database_url))
    key = create_api_key(ws.database_url, "acme", "ingest")
    api = Api(ws, free_port(), tmp_path / "api.log")
    api.start()
    url = f"http://127.0.0.1:{api.port}/v1/feedback"
    finish = threading.Event()
    clients = [Client(url, key, n, finish) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    try:
        for _ in range(KILLS):
            time.sleep(0.5)
            api.kill()  # mid-stream: requests in flight, commits in progress
            api.start()
        time.sleep(0.5)
    finally:
        finish.set()
        for c in clients:
            c.join(timeout=120)
        api.kill()
    assert not any(c.is_alive() for c in clients), "clients did not finish"
    for c in clients:
        if c.error is not None:
            raise AssertionError(f"client {c.n} failed: {c.error!r}") from c.error
    acked = [e for c in clients for e in c.acked]
    failures = sum(c.failures for c in clients)
    print(f"acknowledged {len(acked)} events, {failures} failed tries across {KILLS} kills")
    assert failures >= KILLS, "the kills did not hit requests in flight"
    with session_scope(ws.database_url) as s:
        query = select(FeedbackEvent.event_id).where(FeedbackEvent.tenant == "acme")
        stored = list(s.scalars(query))
    assert len(acked) >= CLIENTS * BATCH * 4, len(acked)  # the clients got work done
    assert len(stored) == len(set(stored))  # exactly once
    assert set(stored) == set(acked)  # every acknowledged event is there, nothing else
