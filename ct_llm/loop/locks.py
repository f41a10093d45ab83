"""Job locks: one training (or cycle) per tenant at a time, across processes.

An exclusive `flock` on `<workspace>/locks/<job>-<tenant>.lock`. The kernel drops the lock when
the holder exits, however it exits (`kill -9` included), so a crash never leaves a stale lock to
clean up by hand. The file holds the holder's pid and start time, for the error message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ct_llm.errors import BusyError


@contextlib.contextmanager
def job_lock(locks_dir: Path, job: str, tenant: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the `job` lock of `tenant` for the block; BusyError if someone else holds it for
    longer than `wait_s` (0: fail at once)."""
    locks_dir.mkdir(parents=True, exist_ok=True)
    path = locks_dir / f"{job}-{tenant}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                raise BusyError(
                    f"another {job} of tenant '{tenant}' is running ({holder}); wait for it to "
                    f"finish or stop it (lock: {path})"
                ) from None
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {since}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
