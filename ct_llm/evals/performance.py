"""Performance and resources of the candidate vs production on the live server.

Latency is measured for each model *alone*: in the eval's mixed batches a request's latency is
the batch's, so both models would look the same whatever their cost. Each round sends the same
prompts to one model at a time, at a fixed concurrency, generating exactly `max_tokens` tokens
(vLLM's `ignore_eos`) so both models do equal work; rounds alternate which model goes first so
slow drift of a shared machine cancels out. After the first `rounds`, a `settled` callback (the
gate's latency rule, gate/latency.py) is asked after every pair of rounds whether the interval
already decides; measuring goes on until it does or `max_rounds` is reached. Every sample is
returned, so the gate recomputes the same interval from the stored summary.

The adapter's footprint is read from its files without torch: the safetensors header lists every
tensor's shape, so the parameter count and the memory it needs in the serving dtype follow.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ct_llm.evals.runner import Conversation, make_client
from ct_llm.stats import percentile

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4, "auto": 2}


def _timed_request(client: Any, model: str, messages: Conversation, max_tokens: int) -> dict:
    import openai

    start = time.perf_counter()
    try:
        resp = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=0.0,
            max_tokens=max_tokens,
            extra_body={"ignore_eos": True},
        )
    except openai.OpenAIError as e:
        return {"ok": False, "latency_s": time.perf_counter() - start, "error": str(e)[:200]}
    tokens = resp.usage.completion_tokens if resp.usage else 0
    return {"ok": True, "latency_s": time.perf_counter() - start, "tokens": tokens}


def _ok_ms(samples: list[dict]) -> list[float]:
    return [round(s["latency_s"] * 1000, 1) for s in samples if s["ok"]]


def _stats(rounds_of: list[list[dict]], wall_s: float) -> dict[str, Any]:
    samples = [s for r in rounds_of for s in r]
    ok = _ok_ms(samples)
    tokens = sum(s.get("tokens", 0) for s in samples if s["ok"])
    p50, p95 = percentile(ok, 50), percentile(ok, 95)
    return {
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
        "tokens_per_s": round(tokens / wall_s, 2) if wall_s > 0 and tokens else None,
        "n": len(ok),
        "errors": len(samples) - len(ok),
        "rounds": len(rounds_of),
        "samples_ms": ok,
        "rounds_ms": [_ok_ms(r) for r in rounds_of],
    }


def measure_performance(
    base_url: str,
    models: dict[str, str],
    prompts: Sequence[Conversation],
    *,
    max_tokens: int = 32,
    rounds: int = 2,
    max_rounds: int | None = None,
    settled: Callable[[dict[str, list[list[float]]]], bool] | None = None,
    concurrency: int = 4,
    api_key: str = "none",
    timeout_s: float = 120.0,
) -> dict[str, dict[str, Any]]:
    """{role: {p50_ms, p95_ms, tokens_per_s, n, errors, rounds, samples_ms, rounds_ms}} for each
    of `models` ({role: model}); at least `rounds` rounds, then more (in pairs, so the order
    stays balanced) while `settled(latencies by role and round)` is False, up to `max_rounds`."""
    client = make_client(base_url, api_key, timeout_s)
    samples: dict[str, list[list[dict]]] = {role: [] for role in models}
    wall: dict[str, float] = dict.fromkeys(models, 0.0)
    roles = list(models)
    limit = rounds if settled is None else max(rounds, max_rounds or rounds)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        while done < limit:
            order = roles if done % 2 == 0 else roles[::-1]
            for role in order:
                t0 = time.perf_counter()
                futures = [
                    pool.submit(_timed_request, client, models[role], p, max_tokens)
                    for p in prompts
                ]
                samples[role].append([f.result() for f in futures])
                wall[role] += time.perf_counter() - t0
            done += 1
            if done < rounds or done % 2 or settled is None:
                continue
            if settled({role: [_ok_ms(r) for r in samples[role]] for role in roles}):
                break
    return {role: _stats(samples[role], wall[role]) for role in roles}


def _safetensors_parameters(path: Path) -> int:
    """Number of parameters in a safetensors file, from its JSON header alone."""
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    total = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in meta.get("shape", []):
            n *= int(dim)
        total += n
    return total


def adapter_footprint(adapter_dir: Path, serving_dtype: str = "bfloat16") -> dict[str, Any]:
    """Rank, file size, parameter count and the memory its weights take in the serving dtype."""
    adapter_dir = Path(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    config_path = adapter_dir / "adapter_config.json"
    rank = None
    if config_path.is_file():
        from ct_llm.deploy.adapter_checks import adapter_rank

        rank = adapter_rank(json.loads(config_path.read_text()))
    if not weights.is_file():
        return {"rank": rank, "size_bytes": None, "parameters": None, "serving_memory_bytes": None}
    params = _safetensors_parameters(weights)
    per_param = _DTYPE_BYTES.get(serving_dtype, 2)
    return {
        "rank": rank,
        "size_bytes": weights.stat().st_size,
        "parameters": params,
        # vLLM keeps a loaded adapter's weights in the serving dtype (one CPU-cache copy, and a
        # GPU slot preallocated at start-up for max_loras x max_lora_rank).
        "serving_memory_bytes": params * per_param,
        "serving_dtype": serving_dtype,
    }
