"""The gateway's background watchers; a failed tick is logged and tried again at the next one,
it never stops the gateway.

- canaries: every `deploy.canary_check_interval_s`, each tenant's canary is checked against
  production on live feedback (deploy/canary_watch.py) and promoted or rolled back by itself,
  on the replicas this gateway serves from;
- memory: every `MEMORY_CHECK_S`, the replicas this process started are checked for memory
  growth and restarted one at a time if needed (deploy/restart.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool

from ct_llm.deploy.restart import Managed, needs_restart, restart_replica
from ct_llm.errors import CtLlmError
from ct_llm.gateway.upstreams import Upstreams
from ct_llm.workspace import Workspace

log = logging.getLogger(__name__)
MEMORY_CHECK_S = 30.0


def check_all(ws: Workspace, upstreams: list[str]) -> list[dict[str, Any]]:
    """One tick: check (and act on) every tenant's canary. Blocking; returns the results."""
    from ct_llm.deploy.canary_watch import check_canary, tenants_with_canary

    results = []
    for tenant in tenants_with_canary(ws):
        try:
            res = check_canary(ws, tenant, apply=True, server_url=upstreams, record_wait=False)
        except CtLlmError as e:
            log.warning("canary check of tenant %s failed: %s", tenant, e)
            continue
        if res["action"] != "wait":
            log.info("canary %s of %s: %s", res["canary"], tenant, res["action"])
        results.append(res)
    return results


async def watch_canaries(ws: Workspace, upstreams: list[str], interval_s: float) -> None:
    """Run `check_all` every `interval_s` until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(check_all, ws, upstreams)
        except Exception:  # a bug in one tick must not end the watcher
            log.exception("canary watcher tick failed")


def check_memory(ws: Workspace, managed: list[Managed], upstreams: Upstreams) -> list[str]:
    """One tick: restart (at most) one replica whose memory grew past the limit. Blocking;
    returns the URLs restarted."""
    from ct_llm.deploy.rollout import reconcile_serving

    limit = ws.config.serving.restart_rss_growth_mb
    for m in managed:
        now = m.rss_mb()
        if m.baseline_mb is None:
            m.baseline_mb = now  # first look once warm
            continue
        others = sum(1 for r in upstreams.replicas if r.url != m.url and not r.cordoned)
        if not needs_restart(m.baseline_mb, now, limit, others):
            if limit is not None and now - m.baseline_mb > limit:
                log.warning(
                    "vLLM replica %s grew %.0f MB; no other replica to take its traffic, "
                    "so it is not restarted",
                    m.url,
                    now - m.baseline_mb,
                )
            continue
        up = upstreams.get(m.url)
        grew = now - m.baseline_mb
        took = restart_replica(
            m,
            cordon=lambda on, up=up: setattr(up, "cordoned", on),
            in_flight=lambda up=up: up.in_flight,
            reload=lambda url: reconcile_serving(ws, server_url=url),
            drain_timeout_s=ws.config.serving.drain_timeout_s,
        )
        log.info("replica %s restarted (grew %.0f MB); out for %.1f s", m.url, grew, took)
        return [m.url]  # one per tick: the next waits until this one serves again
    return []


async def watch_memory(ws: Workspace, managed: list[Managed], upstreams: Upstreams) -> None:
    while True:
        await asyncio.sleep(MEMORY_CHECK_S)
        try:
            await run_in_threadpool(check_memory, ws, managed, upstreams)
        except Exception:
            log.exception("memory watcher tick failed")
