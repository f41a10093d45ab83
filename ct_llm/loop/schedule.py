"""`ct-llm schedule`: run cycles at a fixed interval until stopped (SIGINT / SIGTERM).

A failed cycle is logged (and recorded by the cycle itself) and the next tick tries again; the
daemon never dies on one bad cycle. Cron expressions and per-tenant locks come with the
scheduler issue.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from ct_llm.errors import CtLlmError
from ct_llm.loop.cycle import run_cycle
from ct_llm.workspace import Workspace


def run_schedule(
    ws: Workspace, tenant: str, *, interval_s: float, once: bool, log: Callable[[str], None]
) -> None:
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log(f"[schedule] signal {signum}: finishing the current step, then stopping")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    while not stop.is_set():
        try:
            res = run_cycle(ws, tenant, progress=lambda m: log(f"[cycle] {m}"))
            log(
                f"[schedule] trained={res['trained']} outcome={res.get('outcome', 'skipped')} "
                f"reason: {res['reason']}"
            )
        except CtLlmError as e:
            log(f"[schedule] cycle failed: {e}")
        if once:
            break
        stop.wait(interval_s)
