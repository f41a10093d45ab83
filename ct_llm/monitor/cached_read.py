"""A store read for metrics whose result is cached and whose cost is bounded.

A read is repeated at most once per `min_interval_s`, and never more often than `1 / max_busy`
times its own duration: at `max_busy` 0.05 a read that takes 2 s runs at most every 40 s (5% of
one connection's time), however often it is asked for. A failed read keeps the previous value
and marks it stale (`up` is False) instead of failing the scrape or request that asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("ct_llm.monitor")

T = TypeVar("T")


class CachedRead(Generic[T]):
    def __init__(
        self,
        read: Callable[[], T],
        *,
        what: str,
        min_interval_s: float,
        max_busy: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < max_busy <= 1:
            raise ValueError(f"max_busy must be in (0, 1], not {max_busy}")
        self.min_interval_s, self.max_busy, self.clock = min_interval_s, max_busy, clock
        self._read, self._what = read, what
        self._lock = threading.Lock()
        self._next_read = 0.0
        self.value: T | None = None
        """The last value read; None before the first successful read."""
        self.up = True
        """Whether the last read succeeded."""

    def due(self) -> bool:
        """Whether `get` would read now."""
        return self.value is None or self.clock() >= self._next_read

    def get(self) -> T | None:
        """The cached value, read anew first when it is due."""
        with self._lock:  # concurrent callers wait for one read instead of starting their own
            if not self.due():
                return self.value
            now, started = self.clock(), time.perf_counter()
            try:
                self.value, self.up = self._read(), True
            except Exception as e:  # metrics must not fail with the store
                log.warning("reading %s for metrics failed: %s", self._what, e)
                self.up = False
            took = time.perf_counter() - started
            self._next_read = now + max(self.min_interval_s, took / self.max_busy)
            return self.value
