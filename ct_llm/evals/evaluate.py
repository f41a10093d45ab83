"""One eval of a candidate against production on the live server, in four phases:

1. answers: every prompt of every suite (and the held-out prompts for the judge), from both
   models, in one concurrent batch so vLLM's continuous batching does the work;
2. scoring: checks per case (target / regression / safety), canary leaks over every answer;
3. judging: the pairwise judge on judge-suite and held-out prompts; RAG metrics on rag suites;
4. performance: latency and tokens/s of each model alone, and the adapter's footprint.

Each phase is optional except the first two; the result is plain data (evals/results.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ct_llm.config import PerformanceConfig
from ct_llm.evals.checks import case_passes
from ct_llm.evals.judge import JudgeItem, JudgeResult, JudgeSettings, judge_pairs
from ct_llm.evals.recheck import recheck
from ct_llm.evals.results import CaseResult, EvalResult, RagCase, RagResult, SuiteResult
from ct_llm.evals.runner import Conversation, Generation, api_base, generate, latency_stats
from ct_llm.evals.safety import find_leaks
from ct_llm.evals.suite import Case, Suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """A prompt without checks (held-out data, judge suites): answered by both, then judged."""

    id: str
    messages: Conversation


@dataclass(frozen=True)
class RagOptions:
    base_url: str
    model: str
    api_key: str = "none"
    metrics: tuple[str, ...] = ("faithfulness", "answer_relevancy")
    timeout_s: float = 180.0
    max_tokens: int = 512
    max_list_items: int = 10


@dataclass(frozen=True)
class EvalOptions:
    max_tokens: int = 96
    concurrency: int = 8
    api_key: str = "none"
    timeout_s: float = 120.0
    judge: JudgeSettings | None = None
    rag: RagOptions | None = None
    performance: PerformanceConfig | None = None
    """`eval.performance` (its `enabled` flag is the caller's to honour)."""
    adapter_dir: Path | None = None
    """The candidate adapter's folder, for its footprint; None for a base model."""
    serving_dtype: str = "bfloat16"
    endpoints: dict[str, str] = field(default_factory=dict)
    """Model -> server URL for the answers phase when a model is not answered by `base_url`
    (the merged candidate, evals/merged.py). The performance phase always measures on
    `base_url`: the serving cost users will see."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Recorded in the settings as given (e.g. where the held-out prompts came from)."""
    recheck_sample: int | None = None
    """Ask the discordant cases again, plus this many concordant ones (evals/recheck.py);
    None: no second asking."""
    latency_reference: tuple[str, str] | None = None
    """(served model name, description) the candidate's latency is compared with; None: the
    baseline model itself."""
    latency_settled: Callable[[list[list[float]], list[list[float]]], bool] | None = None
    """Stop measuring latency once this says the gate's rule is decided (the candidate's and
    the reference's latencies, one list per round)."""
    on_answered: Callable[[], None] | None = None
    """Called once the answers phase is over, before anything else: stops the `endpoints`
    servers, which the later phases never ask (measured on 2 cores: an idle vLLM-CPU engine
    keeps half a core busy, slowing the live server's rechecks and latency rounds)."""


def conversation_text(messages: Conversation) -> str:
    """The prompt as a judge sees it: the user turn, or a transcript when there are several."""
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in turns)


def _text(messages: Conversation) -> str:
    return "\n".join(m["content"] for m in messages)


def _score(case: Case, gen: Generation) -> tuple[bool, list[str]]:
    if gen.error is not None:
        return False, ["request failed"]  # an error is a failed case, never a crash
    return case_passes(case, gen.answer)


def _checked_suite(suite: Suite, cand: list[Generation], base: list[Generation]) -> SuiteResult:
    rows = []
    for case, cg, bg in zip(suite.cases, cand, base, strict=True):
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
    return SuiteResult(suite.name, suite.kind, suite.description, rows)


def _rag(
    suite_cases: list[tuple[Case, Generation, Generation]], opts: RagOptions, concurrency: int
) -> RagResult:
    from ct_llm.evals.rag import RagSample, score_rag_samples

    samples: list[Any] = []
    for case, cg, bg in suite_cases:
        contexts = list(case.contexts or [])
        samples.append(RagSample(f"candidate:{case.id}", case.question, contexts, cg.answer))
        samples.append(RagSample(f"baseline:{case.id}", case.question, contexts, bg.answer))
    scored = score_rag_samples(
        samples,
        base_url=api_base(opts.base_url),
        model=opts.model,
        api_key=opts.api_key,
        metrics=opts.metrics,
        timeout_s=opts.timeout_s,
        concurrency=concurrency,
        max_tokens=opts.max_tokens,
        max_list_items=opts.max_list_items,
    )
    by_id = {s.id: s for s in scored}
    cases = []
    for case, cg, bg in suite_cases:
        c, b = by_id[f"candidate:{case.id}"], by_id[f"baseline:{case.id}"]
        cases.append(
            RagCase(
                case.id,
                case.question,
                list(case.contexts or []),
                cg.answer,
                bg.answer,
                {"candidate": dict(c.scores), "baseline": dict(b.scores)},
                [f"candidate: {e}" for e in c.errors] + [f"baseline: {e}" for e in b.errors],
            )
        )
    return RagResult(list(opts.metrics), cases, opts.model)


def evaluate(
    base_url: str,
    candidate_model: str,
    baseline_model: str,
    suites: Sequence[Suite],
    prompts: Sequence[Prompt] = (),
    options: EvalOptions | None = None,
) -> EvalResult:
    """Answer, score, judge and measure the candidate against the baseline (see module doc)."""
    opts = options or EvalOptions()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    cases = [(s, c) for s in suites for c in s.cases]
    convs = [c.conversation(s.system_prompt) for s, c in cases] + [p.messages for p in prompts]
    caps = [s.case_max_tokens(c, opts.max_tokens) for s, c in cases]
    caps += [opts.max_tokens] * len(prompts)
    jobs = [(candidate_model, c) for c in convs] + [(baseline_model, c) for c in convs]

    def answer(
        todo: list[tuple[str, Conversation]],
        todo_caps: list[int],
        endpoints: dict[str, str] | None = None,
    ) -> list[Generation]:
        return generate(
            base_url,
            todo,
            max_tokens=todo_caps,
            concurrency=opts.concurrency,
            api_key=opts.api_key,
            timeout_s=opts.timeout_s,
            endpoints=endpoints,
        )

    gens = answer(jobs, caps + caps, opts.endpoints)
    if opts.on_answered is not None:
        opts.on_answered()
    cand_gens, base_gens = gens[: len(convs)], gens[len(convs) :]
    log.info(
        "eval: %d requests answered in %.1f s (%d failed)",
        len(jobs),
        time.perf_counter() - t0,
        sum(g.error is not None for g in gens),
    )
    by_case = {
        (s.name, c.id): (cg, bg)
        for (s, c), cg, bg in zip(cases, cand_gens, base_gens, strict=False)
    }

    results = []
    judge_items: list[JudgeItem] = []
    rag_cases: list[tuple[Case, Generation, Generation]] = []
    for s in suites:
        pairs = [by_case[(s.name, c.id)] for c in s.cases]
        if s.checked:
            results.append(_checked_suite(s, [p[0] for p in pairs], [p[1] for p in pairs]))
        elif s.kind == "judge":
            judge_items += [
                JudgeItem(
                    f"{s.name}/{c.id}", conversation_text(c.conversation()), cg.answer, bg.answer
                )
                for c, (cg, bg) in zip(s.cases, pairs, strict=True)
                if cg.error is None and bg.error is None
            ]
        elif s.kind == "rag":
            rag_cases += [(c, cg, bg) for c, (cg, bg) in zip(s.cases, pairs, strict=True)]
    offset = len(cases)
    for i, p in enumerate(prompts):
        cg, bg = cand_gens[offset + i], base_gens[offset + i]
        if cg.error is None and bg.error is None:
            judge_items.append(JudgeItem(p.id, conversation_text(p.messages), cg.answer, bg.answer))

    recheck_stats = None
    if opts.recheck_sample is not None and results:
        t1 = time.perf_counter()
        recheck_stats = recheck(
            [s for s in suites if s.checked],
            results,
            candidate_model=candidate_model,
            baseline_model=baseline_model,
            answer=answer,  # no endpoints: the candidate as served, on the live server
            sample=opts.recheck_sample,
            default_max_tokens=opts.max_tokens,
        ).to_dict()
        log.info("eval: cases asked again in %.1f s: %s", time.perf_counter() - t1, recheck_stats)

    canaries = sorted({c for s in suites for c in s.canaries})
    answered = [
        (role, s.name, c.id, _text(conv), gen.answer)
        for (s, c), conv, cg, bg in zip(cases, convs, cand_gens, base_gens, strict=False)
        for role, gen in (("candidate", cg), ("baseline", bg))
    ] + [
        (role, "heldout", p.id, _text(p.messages), gen.answer)
        for i, p in enumerate(prompts)
        for role, gen in (("candidate", cand_gens[offset + i]), ("baseline", base_gens[offset + i]))
    ]
    leaks = find_leaks(answered, canaries)

    judge: JudgeResult | None = None
    if opts.judge is not None and judge_items:
        judge = judge_pairs(judge_items, opts.judge)
    rag = _rag(rag_cases, opts.rag, opts.concurrency) if opts.rag and rag_cases else None

    latency = {"candidate": latency_stats(cand_gens), "baseline": latency_stats(base_gens)}
    if opts.performance is not None:
        latency = _performance(base_url, candidate_model, baseline_model, suites, opts)
    adapter = None
    if opts.adapter_dir is not None:
        from ct_llm.evals.performance import adapter_footprint

        adapter = adapter_footprint(opts.adapter_dir, opts.serving_dtype)

    settings = {
        "base_url": base_url,
        "max_tokens": opts.max_tokens,
        # Suites that cut their answers elsewhere (cases may cut them again: see the suite file).
        "suite_max_tokens": {s.name: s.max_tokens for s in suites if s.max_tokens},
        "concurrency": opts.concurrency,
        "temperature": 0.0,
        "heldout_prompts": len(prompts),
        "started_at": started.isoformat(),
        "duration_s": round(time.perf_counter() - t0, 2),
        **opts.extra,
    }
    if opts.performance is not None:
        settings["performance"] = opts.performance.model_dump()
    return EvalResult(
        candidate_model,
        baseline_model,
        results,
        latency,
        settings,
        judge=judge,
        rag=rag,
        canaries=len(canaries),
        leaks=leaks,
        adapter=adapter,
        recheck=recheck_stats,
    )


def _performance(
    base_url: str, candidate: str, baseline: str, suites: Sequence[Suite], opts: EvalOptions
) -> dict[str, dict[str, Any]]:
    from ct_llm.evals.performance import measure_performance

    perf = opts.performance
    assert perf is not None
    convs = [c.conversation(s.system_prompt) for s in suites if s.checked for c in s.cases]
    if not convs:
        convs = [c.conversation(s.system_prompt) for s in suites for c in s.cases]
    reference, label = opts.latency_reference or (baseline, "production")
    settled = opts.latency_settled
    measured = measure_performance(
        base_url,
        {"candidate": candidate, "baseline": reference},
        convs[: perf.prompts],
        max_tokens=perf.max_tokens,
        rounds=perf.rounds,
        max_rounds=perf.max_rounds,
        settled=(lambda s: settled(s["candidate"], s["baseline"])) if settled else None,
        concurrency=perf.concurrency,
        api_key=opts.api_key,
        timeout_s=opts.timeout_s,
    )
    return {**measured, "reference": label}
