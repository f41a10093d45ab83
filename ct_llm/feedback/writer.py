"""The feedback writer: one thread commits the batches of many concurrent requests together.

Why: a durable commit costs an fsync (SQLite WAL with `synchronous=FULL`; PostgreSQL's WAL flush).
One commit per request caps ingestion at the disk's fsync rate. Here every request hands its batch
to a queue; the writer thread takes whatever has queued up while the previous commit ran (up to
`max_group_events` events), stages each request in one transaction, in arrival order, and commits
once. Then every request in the group gets its answer. Nothing is acknowledged before its commit
returned, so an acknowledged event survives a crash of the server (`kill -9`) and, with
`synchronous=FULL`, of the machine.

Requests in one group see each other's rows, so duplicates and conflicts across concurrent
requests are classified as if they had come one after another. If the group's transaction fails
(another process inserted one of the same event ids; a bug), each request is retried alone in a
transaction of its own, so one request's failure never becomes another's.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ct_llm.feedback.ingest import IngestResult, ingest_events, stage_events
from ct_llm.feedback.schema import DEFAULT_LIMITS, TextLimits
from ct_llm.feedback.sender import Sender, as_sender
from ct_llm.store.db import session_scope

log = logging.getLogger("ct_llm.feedback.writer")


class WriterBusy(Exception):
    """The queue is full: the caller should answer 503 and let the client retry."""


class WriterStopped(Exception):
    """The writer is not running (not started yet, or shutting down)."""


@dataclass
class _Request:
    sender: Sender
    items: Sequence[Any]
    future: Future[IngestResult] = field(default_factory=Future)


@dataclass
class WriterStats:
    groups: int = 0
    requests: int = 0
    fallbacks: int = 0
    """Groups whose transaction failed and whose requests were retried one by one."""


class GroupCommitWriter:
    """`writer.start()`; then `await writer.ingest(sender, items)` per request; `writer.stop()`."""

    def __init__(
        self,
        database_url: str,
        *,
        limits: TextLimits = DEFAULT_LIMITS,
        max_group_events: int = 5000,
        max_queued_requests: int = 10_000,
    ) -> None:
        self.database_url = database_url
        self.limits = limits
        self.max_group_events = max_group_events
        self._queue: queue.Queue[_Request | None] = queue.Queue(max_queued_requests)
        self._thread: threading.Thread | None = None
        self.stats = WriterStats()

    # lifecycle
    def start(self) -> GroupCommitWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="feedback-writer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then end the thread."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout_s)

    # submitting
    def submit(self, sender: Sender | str, items: Sequence[Any]) -> Future[IngestResult]:
        if self._thread is None:
            raise WriterStopped("the feedback writer is not running")
        request = _Request(as_sender(sender), items)
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise WriterBusy(f"{self._queue.maxsize} requests are waiting to be stored") from None
        return request.future

    async def ingest(self, sender: Sender | str, items: Sequence[Any]) -> IngestResult:
        return await asyncio.wrap_future(self.submit(sender, items))

    # the writer thread
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, events = [first], len(first.items)
            # Take what queued up meanwhile; that is the whole trick.
            while events < self.max_group_events:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                events += len(nxt.items)
            self._commit(group)

    def _commit(self, group: list[_Request]) -> None:
        self.stats.groups += 1
        self.stats.requests += len(group)
        try:
            with session_scope(self.database_url) as session:
                results = [stage_events(session, r.sender, r.items, self.limits) for r in group]
        except Exception:
            log.warning("group of %d requests failed; retrying each alone", len(group), exc_info=1)
            self.stats.fallbacks += 1
            for request in group:
                self._commit_alone(request)
            return
        for request, result in zip(group, results, strict=True):
            request.future.set_result(result)

    def _commit_alone(self, request: _Request) -> None:
        try:
            with session_scope(self.database_url) as session:
                result = ingest_events(session, request.sender, request.items, self.limits)
        except Exception as e:
            request.future.set_exception(e)
        else:
            request.future.set_result(result)
