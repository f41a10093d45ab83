"""Rolling restart of managed vLLM replicas whose host memory keeps growing.

vLLM does not always give memory back when an adapter is unloaded, so a replica that has
loaded many versions can creep towards the host's limit. ct-llm watches the resident memory of
each replica it started (its whole process group) and, past `serving.restart_rss_growth_mb`
over what it used once warm, restarts it - one replica at a time, and only while another one
serves: the gateway stops sending to it, waits for its in-flight requests, restarts it, loads
the adapters the aliases point at, and takes it back. No request is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ct_llm.deploy.vllm_server import VllmServer

log = logging.getLogger(__name__)


def process_group_rss_mb(pgid: int) -> float:
    """Resident memory (VmRSS, MB) of every process in a process group, summed (Linux /proc;
    0.0 elsewhere). Shared pages are counted per process: an upper bound, compared only with
    itself over time."""
    total = 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total / 1024


def needs_restart(
    baseline_mb: float | None, now_mb: float, limit_mb: float | None, others_up: int
) -> bool:
    """Pure: restart when memory grew past the limit over the warm baseline and another
    replica can take the traffic meanwhile (with one replica a restart would drop requests:
    it is logged instead)."""
    if limit_mb is None or baseline_mb is None:
        return False
    return now_mb - baseline_mb > limit_mb and others_up >= 1


@dataclass
class Managed:
    """A replica this process started: its server and the memory it used once warm."""

    server: VllmServer
    baseline_mb: float | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def rss_mb(self) -> float:
        proc = self.server.process
        return process_group_rss_mb(proc.pid) if proc is not None else 0.0


def restart_replica(
    managed: Managed,
    *,
    cordon: Callable[[bool], None],
    in_flight: Callable[[], int],
    reload: Callable[[str], object],
    drain_timeout_s: float,
) -> float:
    """Take one replica out of rotation, wait for its requests, restart it, load the aliased
    adapters back (`reload(url)`), put it back. Returns the seconds it was out of rotation."""
    began = time.monotonic()
    cordon(True)
    try:
        deadline = began + drain_timeout_s
        while in_flight() > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        log.info("restarting vLLM replica %s (in flight left: %d)", managed.url, in_flight())
        managed.server.stop()
        managed.server.start()
        reload(managed.url)
        managed.baseline_mb = None  # measured again once warm
    finally:
        cordon(False)
    return time.monotonic() - began
