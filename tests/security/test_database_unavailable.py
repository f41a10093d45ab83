"""A locked or unreachable database is a 503 with Retry-After, never a 500, and its error
messages carry no bound values (issue 17)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ct_llm.config import WorkspaceConfig
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.store import db
from ct_llm.store.db import session_scope
from ct_llm.store.models import ApiKey
from ct_llm.workspace import Workspace

EVENT = {
    "event_id": "e-1",
    "kind": "thumbs",
    "value": True,
    "messages": [{"role": "user", "content": "hi"}],
    "response": "hello",
}


def test_a_locked_sqlite_database_is_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every connection of this (new) database gives up on a lock after 0.2 s instead of 30 s.
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig())
    auth = {"Authorization": f"Bearer {create_api_key(ws.database_url, 'acme', 'ingest')}"}
    app = create_app(ws, "http://model-server.test")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/feedback", json=EVENT, headers=auth).status_code == 200
        # Another process holds the write lock (a long migration, a stuck writer).
        locker = sqlite3.connect(ws.root / "ct-llm.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            r = client.post("/v1/feedback", json={**EVENT, "event_id": "e-2"}, headers=auth)
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "database_unavailable"
            # WAL: reads are not blocked by the writer's lock.
            assert client.get("/v1/feedback/stats", headers=auth).json()["total"] == 1
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # The lock is gone: the refused event can be sent again, and the first one is there.
        r = client.post("/v1/feedback", json={**EVENT, "event_id": "e-2"}, headers=auth)
        assert r.json()["accepted"] == 1
        stats = client.get("/v1/feedback/stats", headers=auth).json()
        assert stats["total"] == 2, stats


def test_an_unreachable_postgresql_is_503(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig())
    ws.config.database_url = "postgresql+psycopg://postgres@127.0.0.1:9/none"  # nothing listens
    app = create_app(ws, "http://model-server.test")
    app.state.database_url = ws.database_url
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/feedback/stats", headers={"Authorization": "Bearer ctk_x"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text


def test_database_errors_carry_no_bound_values(ws: Workspace) -> None:
    secret = "alice@example.com wants her money back"
    with pytest.raises(Exception) as e, session_scope(ws.database_url) as s:
        s.add(ApiKey(tenant=secret, role="ingest", key_hash="h", prefix="p"))
        s.add(ApiKey(tenant=secret, role="ingest", key_hash="h", prefix="p"))  # duplicate hash
    assert "hidden due to query_parameters_hidden" in str(e.value) or "[SQL:" in str(e.value)
    assert "alice" not in str(e.value)


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    """What the README's durability claim rests on: a COMMIT that returned is on disk (FULL),
    and readers are not blocked by the writer (WAL, as the locked test above shows)."""
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig())
    with db.get_engine(ws.database_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_a_database_bug_is_not_dressed_as_busy(ws: Workspace) -> None:
    """SQLite reports a missing table as OperationalError too: that is a bug to fix (500 and a
    log line), not a reason for clients to retry."""
    from sqlalchemy import text as sql

    from ct_llm.gateway.app import database_unavailable

    with pytest.raises(Exception) as e, session_scope(ws.database_url) as s:
        s.execute(sql("SELECT * FROM no_such_table"))
    assert database_unavailable(e.value) is False
