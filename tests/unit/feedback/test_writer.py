"""The group-commit writer on a real SQLite file: grouping, exactly-once under concurrency,
isolation of a failing request, draining on stop, backpressure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from ct_llm.feedback import writer as writer_mod
from ct_llm.feedback.writer import GroupCommitWriter, WriterBusy, WriterStopped
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace


def event(event_id: str, value: bool = True) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "thumbs",
        "value": value,
        "messages": [{"role": "user", "content": "Hi?"}],
        "response": "Hello!",
    }


def stored(ws: Workspace, tenant: str) -> list[str]:
    with session_scope(ws.database_url) as s:
        return list(s.scalars(select(FeedbackEvent.event_id).where(FeedbackEvent.tenant == tenant)))


@pytest.fixture
def writer(ws: Workspace) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(ws.database_url).start()
    yield w
    w.stop()


class WriteLock:
    """Blocks inserts into feedback_events from another connection (SQLite: the database write
    lock; PostgreSQL: a table lock that conflicts with INSERT), so the writer waits on its
    transaction and requests pile up in the queue meanwhile."""

    def __init__(self, ws: Workspace) -> None:
        self.engine = create_engine(ws.database_url, poolclass=NullPool)

    def __enter__(self) -> WriteLock:
        self.conn = self.engine.connect()
        if self.engine.dialect.name == "sqlite":
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.conn.begin()
            self.conn.exec_driver_sql("LOCK TABLE feedback_events IN SHARE ROW EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()
        self.engine.dispose()


def test_requests_that_queue_up_share_one_commit(ws: Workspace, writer: GroupCommitWriter) -> None:
    with WriteLock(ws):
        futures = [writer.submit("acme", [event(f"e{i}")]) for i in range(20)]
        time.sleep(0.3)  # the writer took the first request(s) and waits for the lock
        assert not any(f.done() for f in futures)
    results = [f.result(timeout=30) for f in futures]
    assert [r.accepted for r in results] == [1] * 20
    assert writer.stats.requests == 20
    assert writer.stats.groups <= 3, writer.stats  # not one commit per request
    assert sorted(stored(ws, "acme")) == sorted(f"e{i}" for i in range(20))


def test_concurrent_overlapping_batches_store_each_event_once(
    ws: Workspace, writer: GroupCommitWriter
) -> None:
    # 8 clients send overlapping id ranges, as retries after a timeout would.
    batches = [[event(f"e{j}") for j in range(i * 10, i * 10 + 30)] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda b: writer.submit("acme", b).result(timeout=30), batches * 2))
    distinct = {e["event_id"] for b in batches for e in b}
    assert sum(r.accepted for r in results) == len(distinct)
    assert sum(r.accepted + r.duplicates for r in results) == sum(len(b) for b in batches * 2)
    assert all(r.rejected == [] for r in results)
    ids = stored(ws, "acme")
    assert len(ids) == len(set(ids)) == len(distinct)


def test_conflict_across_requests_in_one_group(ws: Workspace, writer: GroupCommitWriter) -> None:
    with WriteLock(ws):
        blocker = writer.submit("acme", [event("first")])
        time.sleep(0.2)
        a = writer.submit("acme", [event("same", True)])
        b = writer.submit("acme", [event("same", False)])  # same id, other payload
        c = writer.submit("acme", [event("same", True)])  # true duplicate of a
    blocker.result(timeout=30)
    assert a.result(timeout=30).accepted == 1
    assert "conflict" in b.result(timeout=30).rejected[0]["error"]
    assert c.result(timeout=30).duplicates == 1


def test_a_failing_request_does_not_fail_its_group(
    ws: Workspace, writer: GroupCommitWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writer_mod.stage_events

    def flaky(session: Any, sender: Any, items: Any, *rest: Any) -> Any:
        if sender.tenant == "broken":
            raise RuntimeError("disk on fire")
        return real(session, sender, items, *rest)

    monkeypatch.setattr(writer_mod, "stage_events", flaky)
    monkeypatch.setattr(writer_mod, "ingest_events", flaky)
    with WriteLock(ws):
        blocker = writer.submit("acme", [event("x0")])
        time.sleep(0.2)
        good = [writer.submit("acme", [event(f"x{i}")]) for i in range(1, 4)]
        bad = writer.submit("broken", [event("y")])
        later = writer.submit("acme", [event("x9")])
    blocker.result(timeout=30)
    assert [f.result(timeout=30).accepted for f in good + [later]] == [1, 1, 1, 1]
    with pytest.raises(RuntimeError, match="disk on fire"):
        bad.result(timeout=30)
    assert writer.stats.fallbacks == 1
    assert sorted(stored(ws, "acme")) == ["x0", "x1", "x2", "x3", "x9"]


def test_stop_commits_what_is_queued(ws: Workspace) -> None:
    w = GroupCommitWriter(ws.database_url).start()
    with WriteLock(ws):
        futures = [w.submit("acme", [event(f"s{i}")]) for i in range(10)]
        stopper = threading.Thread(target=w.stop)
        stopper.start()
        time.sleep(0.2)
    stopper.join(30)
    assert all(f.result(timeout=1).accepted == 1 for f in futures)
    assert len(stored(ws, "acme")) == 10
    with pytest.raises(WriterStopped):
        w.submit("acme", [event("late")])


def test_full_queue_is_refused_not_buffered_without_bound(ws: Workspace) -> None:
    w = GroupCommitWriter(ws.database_url, max_queued_requests=2).start()
    try:
        with WriteLock(ws):
            first = w.submit("acme", [event("q0")])
            time.sleep(0.2)  # the writer holds q0 and waits for the lock
            queued = [w.submit("acme", [event(f"q{i}")]) for i in (1, 2)]
            with pytest.raises(WriterBusy):
                w.submit("acme", [event("q3")])
        assert all(f.result(timeout=30).accepted == 1 for f in [first, *queued])
    finally:
        w.stop()
    with session_scope(ws.database_url) as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 3
