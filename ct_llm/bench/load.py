"""HTTP load for the benchmarks: closed loop (N clients as fast as answers come) and open loop
(a fixed request rate, whatever the latency: what a fleet of chatbots does to the endpoint).

Latency is measured from when a request was due, not when it was sent, so a server that falls
behind an open-loop rate shows it in p99 instead of hiding it (coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class LoadResult:
    requests: int = 0
    events_acknowledged: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        wall = self.wall_s or float("nan")
        return {
            "requests": self.requests,
            "events_acknowledged": self.events_acknowledged,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "requests_per_s": round(self.requests / wall, 1),
            "events_per_s": round(self.events_acknowledged / wall, 1),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
        }


Body = Callable[[int], dict[str, Any]]
"""Request number -> JSON body."""


async def _post(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], due: float, out: LoadResult
) -> None:
    try:
        r = await client.post(url, json=body)
        ok = r.status_code == 200
        answer = r.json() if ok else {}
        acknowledged = answer["accepted"] + answer["duplicates"] if ok else 0
    except (httpx.HTTPError, ValueError, KeyError):
        ok, acknowledged = False, 0
    out.latencies_ms.append((time.perf_counter() - due) * 1000)
    out.requests += 1
    out.events_acknowledged += acknowledged
    out.errors += 0 if ok else 1


def _client(headers: dict[str, str], connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0)


async def closed_loop(
    url: str, headers: dict[str, str], body: Body, requests: int, concurrency: int
) -> LoadResult:
    """`concurrency` clients send `requests` requests in all, each waiting for its answer."""
    out = LoadResult()
    counter = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in counter:
            await _post(client, url, body(n), time.perf_counter(), out)

    async with _client(headers, concurrency) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        out.wall_s = time.perf_counter() - started
    return out


async def open_loop(
    url: str, headers: dict[str, str], body: Body, rate_per_s: float, seconds: float
) -> LoadResult:
    """One request every 1/rate seconds for `seconds`, each on its own task."""
    out = LoadResult()
    total = int(rate_per_s * seconds)
    async with _client(headers, 256) as client:
        started = time.perf_counter()
        tasks = []
        for n in range(total):
            due = started + n / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_post(client, url, body(n), due, out)))
        await asyncio.gather(*tasks)
        out.wall_s = time.perf_counter() - started
    return out
