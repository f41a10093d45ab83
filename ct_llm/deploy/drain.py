"""Wait until a vLLM replica no longer serves an adapter, before unloading it.

Unloading an adapter that queued or running requests still use fails them; the gateway has
moved new traffic away already, so the old name only has to drain. What vLLM is busy with is
read from its own Prometheus metrics, so this works whichever process moved the traffic:
`vllm:lora_requests_info` lists the adapters of running and waiting requests (one series per
distinct label set, valued with the time it was last set: the newest is current), and
`vllm:num_requests_running` / `_waiting` say whether anything runs at all (the LoRA series is
only refreshed while the engine steps, so an idle server may still show its last adapters).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

_LABELS = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Activity:
    requests: float
    """Running + waiting requests on the replica (None-safe: 0 when not reported)."""
    adapters: frozenset[str]
    """Adapters of the running and waiting requests, per the newest LoRA series."""

    def uses(self, name: str) -> bool:
        return self.requests > 0 and name in self.adapters


def parse_activity(metrics_text: str) -> Activity:
    """Pure: the replica's activity from its /metrics text."""
    requests = 0.0
    newest, adapters = -1.0, frozenset[str]()
    for line in metrics_text.splitlines():
        if line.startswith(("vllm:num_requests_running{", "vllm:num_requests_waiting{")):
            requests += float(line.rsplit(" ", 1)[1])
        elif line.startswith("vllm:lora_requests_info{"):
            labels_part, value = line.rsplit(" ", 1)
            stamp = float(value)
            if stamp >= newest:
                labels = dict(_LABELS.findall(labels_part))
                names = labels.get("running_lora_adapters", "").split(",")
                names += labels.get("waiting_lora_adapters", "").split(",")
                newest, adapters = stamp, frozenset(n for n in names if n)
    return Activity(requests, adapters)


def activity(url: str, timeout_s: float = 5.0) -> Activity | None:
    """None when the replica does not answer /metrics (then nothing can be waited for)."""
    try:
        r = httpx.get(url.rstrip("/") + "/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return parse_activity(r.text) if r.status_code == 200 else None


def wait_drained(
    urls: Sequence[str],
    name: str,
    timeout_s: float,
    *,
    settle_s: float = 0.5,
    poll_s: float = 0.2,
) -> bool:
    """Block until no replica has requests for `name`; False if `timeout_s` ran out first.

    `settle_s` first: a request routed just before the traffic moved may still be on its way
    from the gateway to the replica.
    """
    time.sleep(settle_s)
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending:
        pending = [u for u in pending if (a := activity(u)) is not None and a.uses(name)]
        if not pending:
            return True
        if time.monotonic() > deadline:
            log.warning("%s still busy on %s after %.0f s", name, ", ".join(pending), timeout_s)
            return False
        time.sleep(poll_s)
    return True
