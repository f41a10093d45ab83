"""Answer eval prompts on an OpenAI-compatible server (the live vLLM), concurrently.

All requests of both models go through one thread pool so the server batches them
(vLLM's continuous batching made 16 requests ~5x faster sent concurrently). Decoding is greedy
(temperature 0) so a rerun gives the same answers and the comparison measures the models, not
sampling noise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ct_llm.errors import ServingError
from ct_llm.stats import percentile

Conversation = list[dict[str, str]]
log = logging.getLogger(__name__)


@dataclass
class Generation:
    answer: str
    """The completion text; empty when the request failed."""
    latency_s: float
    error: str | None = None
    """Why the request failed (HTTP status, timeout); None on success."""
    connection_failed: bool = False


def api_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def make_client(base_url: str, api_key: str, timeout_s: float) -> Any:
    from openai import OpenAI

    # max_retries=1: one retry absorbs a transient hiccup without doubling a dead server's wait.
    return OpenAI(base_url=api_base(base_url), api_key=api_key, timeout=timeout_s, max_retries=1)


def check_model_served(client: Any, base_url: str, model: str) -> None:
    """Fail fast with a clear message instead of N identical per-case errors."""
    import openai

    try:
        served = [m.id for m in client.models.list()]
    except openai.APIConnectionError as e:
        raise ServingError(
            f"cannot reach the OpenAI-compatible server at {base_url} ({e.__class__.__name__}); "
            "check that vLLM is running (`ct-llm status`) or fix serving.url"
        ) from None
    except openai.APIStatusError as e:
        raise ServingError(
            f"the server at {base_url} answered HTTP {e.status_code} to GET /v1/models; "
            "check that it is an OpenAI-compatible server and the API key"
        ) from None
    if model not in served:
        raise ServingError(
            f"model '{model}' is not served by {base_url} "
            f"(it serves: {', '.join(served) or 'none'}); load the adapter into the server first"
        )


def _one(client: Any, model: str, messages: Conversation, max_tokens: int) -> Generation:
    import openai

    start = time.perf_counter()
    try:
        resp = client.chat.completions.create(
            model=model, messages=messages, temperature=0.0, max_tokens=max_tokens, seed=0
        )
        text = (resp.choices[0].message.content or "") if resp.choices else ""
        return Generation(text, time.perf_counter() - start)
    except openai.APIConnectionError as e:  # includes APITimeoutError
        return Generation("", time.perf_counter() - start, f"{e.__class__.__name__}: {e}", True)
    except openai.APIStatusError as e:
        msg = str(e)[:300]
        return Generation("", time.perf_counter() - start, f"HTTP {e.status_code}: {msg}")
    except openai.OpenAIError as e:
        return Generation("", time.perf_counter() - start, f"{e.__class__.__name__}: {e}"[:300])


def generate(
    base_url: str,
    jobs: Sequence[tuple[str, Conversation]],
    *,
    max_tokens: int | Sequence[int],
    concurrency: int,
    api_key: str = "none",
    timeout_s: float = 120.0,
    endpoints: Mapping[str, str] | None = None,
) -> list[Generation]:
    """Answer every (model, conversation) job; a failed request is a Generation with `error` set.

    `max_tokens` caps every answer, or each job's answer when it is one value per job.

    `endpoints` maps a model to the server that answers it when that is not `base_url` (a merged
    eval candidate on its own server); all jobs still share one pool, so both servers are busy
    at once.

    Raises ServingError when a server is unreachable, a model is not served, or every request
    to one server failed to connect (it died mid-eval): a result made only of errors would be a
    lie.
    """
    caps = [max_tokens] * len(jobs) if isinstance(max_tokens, int) else list(max_tokens)
    if len(caps) != len(jobs):
        raise ValueError(f"{len(caps)} max_tokens values for {len(jobs)} jobs")
    routes = {m: (endpoints or {}).get(m, base_url) for m, _ in jobs}
    clients = {url: make_client(url, api_key, timeout_s) for url in dict.fromkeys(routes.values())}
    for model, url in routes.items():
        check_model_served(clients[url], url, model)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [
            pool.submit(_one, clients[routes[m]], m, conv, cap)
            for (m, conv), cap in zip(jobs, caps, strict=True)
        ]
        out = [f.result() for f in futures]
    for url in clients:
        mine = [g for (m, _), g in zip(jobs, out, strict=True) if routes[m] == url]
        if mine and all(g.connection_failed for g in mine):
            raise ServingError(
                f"every request to {url} failed ({mine[0].error}); the server stopped answering "
                "during the eval: check its log and retry"
            )
    return out


def generate_answers(
    base_url: str,
    model: str,
    conversations: list[Conversation],
    *,
    max_tokens: int,
    concurrency: int,
    api_key: str = "none",
    timeout_s: float = 120.0,
) -> list[str]:
    """One answer per conversation, in order; a request that failed gives "" (see `generate`)."""
    gens = generate(
        base_url,
        [(model, c) for c in conversations],
        max_tokens=max_tokens,
        concurrency=concurrency,
        api_key=api_key,
        timeout_s=timeout_s,
    )
    return [g.answer for g in gens]


def latency_stats(gens: Sequence[Generation]) -> dict[str, Any]:
    # Failed requests are left out of the percentiles: a 0.1 s refusal is not a fast answer.
    ok = [g.latency_s * 1000.0 for g in gens if g.error is None]
    p50, p95 = percentile(ok, 50), percentile(ok, 95)
    return {
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
        "n": len(ok),
        "errors": sum(1 for g in gens if g.error is not None),
    }
