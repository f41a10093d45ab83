"""`ct-llm schedule`: check every tenant's triggers on a cron schedule (or a fixed interval) and
run its cycle, until SIGTERM / SIGINT.

APScheduler (BackgroundScheduler) keeps the time: a `tick` job on a CronTrigger or an
IntervalTrigger, coalesced, so a machine that slept through several ticks runs one check, not a
burst. A tick only hands each tenant's cycle to a pool of `max_parallel` threads and returns.
A tenant whose previous cycle still runs in this process is skipped for that tick, and one that
another process is cycling (`ct-llm cycle` by hand, a CronJob) is skipped when its `cycle` job
lock is taken: either way one log line says so.

Shutdown: the first SIGTERM / SIGINT stops the ticks, lets the running cycles finish (a
training may take a while; Kubernetes' terminationGracePeriodSeconds should allow it) and
starts no new one; queued tenants are dropped. A second signal exits at once: the kernel
releases the locks, and an interrupted training resumes from its last checkpoint on the next
cycle. A failed cycle never stops the scheduler: it is recorded and retried after its backoff.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from ct_llm.errors import BusyError, ConfigError, CtLlmError
from ct_llm.loop.cycle import run_cycle
from ct_llm.store.db import session_scope
from ct_llm.store.models import ApiKey, FeedbackEvent
from ct_llm.workspace import Workspace

Log = Callable[[str], None]
CycleFn = Callable[..., dict[str, Any]]


def known_tenants(ws: Workspace) -> list[str]:
    """Tenants with an active API key or any feedback; the workspace's tenant if none."""
    with session_scope(ws.database_url) as s:
        keyed = s.scalars(select(ApiKey.tenant).where(ApiKey.revoked_at.is_(None)).distinct())
        fed = s.scalars(select(FeedbackEvent.tenant).distinct())
        found = set(keyed) | set(fed)
    return sorted(found) or [ws.config.tenant]


def tenants_to_run(ws: Workspace, tenants: list[str], all_tenants: bool) -> list[str]:
    """`--tenant` flags win, then `--all-tenants` / `schedule.all_tenants`, then
    `schedule.tenants`, then the workspace's tenant."""
    if tenants:
        return sorted(set(tenants))
    if all_tenants or ws.config.schedule.all_tenants:
        return known_tenants(ws)
    return sorted(set(ws.config.schedule.tenants)) or [ws.config.tenant]


class Scheduler:
    """The daemon behind `ct-llm schedule`. `cycle` is run_cycle (a test passes a stand-in to
    observe the shutdown rules)."""

    def __init__(
        self,
        ws: Workspace,
        *,
        tenants: list[str] | None = None,
        all_tenants: bool = False,
        cron: str | None = None,
        interval_s: float | None = None,
        max_parallel: int | None = None,
        log: Log,
        cycle: CycleFn = run_cycle,
    ) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ConfigError(f"--interval must be a positive number of seconds, not {interval_s}")
        self.ws = ws
        self.tenants = list(tenants or [])
        self.all_tenants = all_tenants
        self.cron = cron or ws.config.schedule.cron
        self.interval_s = interval_s
        self.log = lambda msg: log(f"[schedule {_now()}] {msg}")
        self.cycle = cycle
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=max_parallel or ws.config.schedule.max_parallel,
            thread_name_prefix="ct-llm-cycle",
        )
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._signals = 0

    # -- one tick -------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Hand each tenant's cycle to the pool; returns the tenants started."""
        if self.stopping.is_set():
            return []
        try:
            tenants = tenants_to_run(self.ws, self.tenants, self.all_tenants)
        except Exception as e:  # the database is unreachable: log, try again next tick
            self.log(f"cannot list tenants: {e}")
            return []
        started = []
        with self._lock:
            for tenant in tenants:
                previous = self._running.get(tenant)
                if previous is not None and not previous.done():
                    self.log(f"{tenant}: its previous cycle is still running; skipped this tick")
                    continue
                self._running[tenant] = self._pool.submit(self._run_one, tenant)
                started.append(tenant)
        if started:
            self.log(f"checking {', '.join(started)}")
        return started

    def _run_one(self, tenant: str) -> None:
        if self.stopping.is_set():
            self.log(f"{tenant}: not started, shutting down")
            return
        began = time.monotonic()
        try:
            res = self.cycle(self.ws, tenant, progress=lambda m: self.log(f"{tenant}: {m}"))
        except BusyError as e:
            self.log(f"{tenant}: busy, skipped ({e})")
            return
        except CtLlmError as e:
            self.log(f"{tenant}: cycle failed: {e}")
            return
        except Exception as e:  # never let one tenant's bug stop the daemon
            self.log(f"{tenant}: cycle crashed: {type(e).__name__}: {e}")
            return
        took = time.monotonic() - began
        self.log(
            f"{tenant}: trained={res.get('trained')} outcome={res.get('outcome')} "
            f"({took:.1f} s) reason: {res.get('reason')}"
        )

    # -- the daemon -----------------------------------------------------------------------

    def _trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        tz = self.ws.config.triggers.timezone
        if self.interval_s is not None:
            return IntervalTrigger(seconds=self.interval_s, timezone=tz)
        return CronTrigger.from_crontab(self.cron, timezone=tz)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        if self._signals > 1:
            self.log(
                f"signal {signum} again: exiting now; an interrupted training resumes from its "
                "last checkpoint on the next cycle"
            )
            os._exit(128 + signum)
        self.log(f"signal {signum}: finishing the running cycles, starting no new one")
        self.stopping.set()

    def run(self, *, once: bool = False, install_signals: bool = True) -> None:
        """Block until stopped (or, with `once`, until one check of every tenant is done)."""
        previous: dict[int, Any] = {}
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            if once:
                self.tick()
            else:
                self._run_scheduler()
        finally:
            self._drain()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_scheduler(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor as TickExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        trigger = self._trigger()
        scheduler = BackgroundScheduler(
            executors={"default": TickExecutor(1)}, timezone=self.ws.config.triggers.timezone
        )
        scheduler.add_job(
            self.tick,
            trigger,
            id="tick",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # a late tick still runs (once, coalesced)
            next_run_time=datetime.now(timezone.utc),  # check at start, then on schedule
        )
        scheduler.start()
        when = f"every {self.interval_s:g} s" if self.interval_s else f"cron '{self.cron}'"
        self.log(f"started: checks {when} ({self.ws.config.triggers.timezone}), first now")
        try:
            while not self.stopping.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)  # no tick after this; a tick in progress completes

    def _drain(self) -> None:
        running = [t for t, f in self._running.items() if not f.done()]
        if running:
            self.log(f"waiting for the running cycles: {', '.join(sorted(running))}")
        self._pool.shutdown(wait=True)
        self.log("stopped")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
