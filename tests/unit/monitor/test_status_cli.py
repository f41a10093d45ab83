"""`ct-llm status` in a subprocess over a real SQLite workspace: the JSON an operator's script
reads, the lines a person reads, and the page file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ct_llm.config import WorkspaceConfig
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent, LineageEvent
from ct_llm.workspace import Workspace


def ct_llm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ct_llm.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": ""},
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(tenant="acme"))
    now = datetime.now(timezone.utc)
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, "acme", "acme-a-v1", 1, "p", None, None, {})
        registry.set_alias(s, "acme", "production", "acme-a-v1")
        registry.set_alias(s, "acme", "canary", "[bold]v2[/bold]", 0.1)  # markup is data
        for i in range(8):  # votes about logged answers: what the page's chart counts
            s.add(
                ChatResponse(
                    id=f"r{i}",
                    tenant="acme",
                    messages=[{"role": "user", "content": "hi"}],
                    response="hello",
                    model_version="acme-a-v1",
                    latency_ms=1.0,
                )
            )
            s.add(
                FeedbackEvent(
                    tenant="acme",
                    event_id=f"e{i}",
                    payload_hash="h",
                    kind="thumbs",
                    value=i % 4 != 0,
                    model_version="acme-a-v1",
                    response_id=f"r{i}",
                    received_at=now - timedelta(hours=1),
                )
            )
        triggers = {"volume": {"name": "volume", "fired": False, "value": 3, "threshold": 8}}
        s.add(
            LineageEvent(
                tenant="acme",
                action="cycle",
                outcome="skipped",
                actor="cycle",
                details={"reason": "3 new usable feedback events < 8", "triggers": triggers},
            )
        )
    return ws.root


def test_status_json_text_and_page(workspace: Path, tmp_path: Path) -> None:
    page = tmp_path / "out" / "status.html"
    page.parent.mkdir()
    res = ct_llm("status", "--workspace", str(workspace), "--json", "--html", str(page))
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["production"] == "acme-a-v1" and st["canary"]["weight"] == 0.1
    assert st["last_cycle"]["outcome"] == "skipped"
    assert st["triggers"]["volume"]["value"] == 3
    assert st["recent_quality"]["by_model_version"]["acme-a-v1"]["thumbs_down_rate"] == 0.25
    assert st["feedback"]["total"] == 8 and st["page"] == str(page)
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and 'id="chart-thumbs-down"' in html

    res = ct_llm("status", "--workspace", str(workspace))
    assert res.returncode == 0, res.stderr
    assert "production   acme-a-v1\n" in res.stdout
    assert "last 24 h: thumbs-down 25.0% of 8, mean rating n/a of 0" in res.stdout
    assert "[bold]v2[/bold]" in res.stdout  # printed as it is, not as rich markup
    assert "trigger      volume 3 / 8, not fired" in res.stdout


def test_status_refuses_a_bad_window(workspace: Path) -> None:
    res = ct_llm("status", "--workspace", str(workspace), "--days", "0", "--html", "x.html")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "--days" in res.stderr
    assert "--html" in ct_llm("status", "--help").stdout
