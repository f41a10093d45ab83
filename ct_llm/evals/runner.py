"""Run eval suites against an OpenAI-compatible server (the live vLLM) for a candidate and a
baseline model, and score every answer with the suite's checks.

All requests of both models go through one thread pool so the server batches them
(vLLM's continuous batching made 16 requests ~5x faster sent concurrently). Decoding is greedy
(temperature 0) so a rerun gives the same answers and the comparison measures the models, not
sampling noise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ct_llm.errors import ServingError
from ct_llm.evals.checks import case_passes
from ct_llm.evals.suite import Suite

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


def _api_base(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


def _client(base_url: str, api_key: str, timeout_s: float) -> Any:
    from openai import OpenAI

    # max_retries=1: one retry absorbs a transient hiccup without doubling a dead server's wait.
    return OpenAI(base_url=_api_base(base_url), api_key=api_key, timeout=timeout_s, max_retries=1)


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
    max_tokens: int,
    concurrency: int,
    api_key: str = "none",
    timeout_s: float = 120.0,
) -> list[Generation]:
    """Answer every (model, conversation) job; a failed request is a Generation with `error` set.

    Raises ServingError when the server is unreachable, a model is not served, or every request
    failed to connect (the server died mid-eval): a result made only of errors would be a lie.
    """
    client = _client(base_url, api_key, timeout_s)
    for model in dict.fromkeys(m for m, _ in jobs):
        check_model_served(client, base_url, model)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(_one, client, m, conv, max_tokens) for m, conv in jobs]
        out = [f.result() for f in futures]
    if out and all(g.connection_failed for g in out):
        raise ServingError(
            f"every request to {base_url} failed ({out[0].error}); the server stopped answering "
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


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


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


@dataclass
class CaseResult:
    id: str
    prompt: str
    candidate_answer: str
    baseline_answer: str
    candidate_passed: bool
    baseline_passed: bool
    candidate_failed_checks: list[str] = field(default_factory=list)
    baseline_failed_checks: list[str] = field(default_factory=list)
    candidate_error: str | None = None
    baseline_error: str | None = None

    @property
    def changed(self) -> bool:
        return self.candidate_passed != self.baseline_passed


@dataclass
class SuiteResult:
    name: str
    kind: str
    description: str
    cases: list[CaseResult]

    @property
    def n(self) -> int:
        return len(self.cases)

    @property
    def candidate_pass_rate(self) -> float:
        return sum(c.candidate_passed for c in self.cases) / self.n if self.cases else 0.0

    @property
    def baseline_pass_rate(self) -> float:
        return sum(c.baseline_passed for c in self.cases) / self.n if self.cases else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "candidate_pass_rate": round(self.candidate_pass_rate, 4),
            "baseline_pass_rate": round(self.baseline_pass_rate, 4),
            "n": self.n,
        }


@dataclass
class EvalResult:
    candidate: str
    baseline: str
    suites: list[SuiteResult]
    latency: dict[str, dict[str, Any]]
    """{"candidate": {p50_ms, p95_ms, n, errors}, "baseline": {...}}"""
    settings: dict[str, Any] = field(default_factory=dict)
    """What produced the result: server, max_tokens, concurrency, timing."""

    def summary(self) -> dict[str, Any]:
        """What the gate decides on and the store keeps (JSON-safe)."""
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "suites": {s.name: s.summary() for s in self.suites},
            "latency": self.latency,
        }

    def to_dict(self) -> dict[str, Any]:
        suites = []
        for s in self.suites:
            suites.append(
                {
                    "name": s.name,
                    "kind": s.kind,
                    "description": s.description,
                    **s.summary(),
                    "cases": [asdict(c) for c in s.cases],
                }
            )
        return {"summary": self.summary(), "settings": self.settings, "suites": suites}


def evaluate(
    base_url: str,
    candidate_model: str,
    baseline_model: str,
    suites: list[Suite],
    *,
    max_tokens: int = 96,
    concurrency: int = 8,
    api_key: str = "none",
    timeout_s: float = 120.0,
) -> EvalResult:
    """Answer every case of every suite with both models and score both answers."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    convs = [case.conversation(s.system_prompt) for s in suites for case in s.cases]
    jobs = [(candidate_model, c) for c in convs] + [(baseline_model, c) for c in convs]
    gens = generate(
        base_url,
        jobs,
        max_tokens=max_tokens,
        concurrency=concurrency,
        api_key=api_key,
        timeout_s=timeout_s,
    )
    cand_gens, base_gens = gens[: len(convs)], gens[len(convs) :]
    log.info(
        "eval: %d requests to %s answered in %.1f s (%d failed)",
        len(jobs),
        base_url,
        time.perf_counter() - t0,
        sum(g.error is not None for g in gens),
    )

    results: list[SuiteResult] = []
    i = 0
    for s in suites:
        rows = []
        for case in s.cases:
            cg, bg = cand_gens[i], base_gens[i]
            i += 1
            c_ok, c_failed = _score(case, cg)
            b_ok, b_failed = _score(case, bg)
            rows.append(
                CaseResult(
                    case.id,
                    case.question,
                    cg.answer,
                    bg.answer,
                    c_ok,
                    b_ok,
                    c_failed,
                    b_failed,
                    cg.error,
                    bg.error,
                )
            )
        results.append(SuiteResult(s.name, s.kind, s.description, rows))
    settings = {
        "base_url": base_url,
        "max_tokens": max_tokens,
        "concurrency": concurrency,
        "temperature": 0.0,
        "started_at": started.isoformat(),
        "duration_s": round(time.perf_counter() - t0, 2),
    }
    latency = {"candidate": latency_stats(cand_gens), "baseline": latency_stats(base_gens)}
    return EvalResult(candidate_model, baseline_model, results, latency, settings)


def _score(case: Any, gen: Generation) -> tuple[bool, list[str]]:
    if gen.error is not None:
        return False, ["request failed"]  # an error is a failed case, never a crash
    return case_passes(case, gen.answer)
