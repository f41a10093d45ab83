"""Ask again the cases that decide the gate, so that noise is seen instead of counted.

The same greedy request can get another answer on vLLM when the batch around it differs (bf16
kernels are not batch-invariant), and on a CPU server the candidate's answers come from merged
weights on a second server, not from the adapter users will get. The gate's paired rules decide
on the discordant cases (one model passes, the other fails), so those are asked again: the
candidate on the served path (the adapter on the live server), production in another batch. A
seeded sample of the concordant cases is asked again too, to measure how often the fast path
disagrees with the served one where it was not expected to.

A case whose outcome changed for either model is flaky: left out of the gate's counts and
listed in the report (gate/suite_rules.py limits how many a suite may have).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from ct_llm.evals.checks import case_passes
from ct_llm.evals.results import SuiteResult
from ct_llm.evals.runner import Conversation, Generation
from ct_llm.evals.suite import Suite

Answer = Callable[[list[tuple[str, Conversation]], list[int]], list[Generation]]
"""Answers (model, conversation) jobs, each cut at its own max_tokens."""


@dataclass(frozen=True)
class RecheckStats:
    discordant: int
    """Discordant cases asked again."""
    discordant_changed: int
    sampled: int
    """Concordant cases asked again (seeded sample)."""
    sampled_changed: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pick_rechecks(
    results: Sequence[SuiteResult], sample: int, seed: int = 0
) -> list[tuple[int, int]]:
    """(suite index, case index) of every discordant case, then of a seeded sample of at most
    `sample` concordant ones; the same results always give the same picks."""
    discordant, concordant = [], []
    for i, suite in enumerate(results):
        for j, case in enumerate(suite.cases):
            (discordant if case.changed else concordant).append((i, j))
    rng = random.Random(seed)
    picked = sorted(rng.sample(concordant, min(sample, len(concordant))))
    return discordant + picked


def recheck(
    suites: Sequence[Suite],
    results: Sequence[SuiteResult],
    *,
    candidate_model: str,
    baseline_model: str,
    answer: Answer,
    sample: int,
    default_max_tokens: int,
) -> RecheckStats:
    """Ask the picked cases again (production's jobs first, so every batch differs from the
    first pass) and record the outcomes on the cases; returns the counts."""
    by_name = {s.name: s for s in suites}
    picks = pick_rechecks(results, sample)
    convs, caps = [], []
    for i, j in picks:
        suite = by_name[results[i].name]
        convs.append(suite.cases[j].conversation(suite.system_prompt))
        caps.append(suite.case_max_tokens(suite.cases[j], default_max_tokens))
    jobs = [(baseline_model, c) for c in convs] + [(candidate_model, c) for c in convs]
    gens = answer(jobs, caps + caps) if jobs else []
    base_gens, cand_gens = gens[: len(convs)], gens[len(convs) :]
    changed = {True: 0, False: 0}
    counts = {True: 0, False: 0}
    for (i, j), bg, cg in zip(picks, base_gens, cand_gens, strict=True):
        case = results[i].cases[j]
        spec = by_name[results[i].name].cases[j]
        discordant = case.changed
        case.candidate_recheck = cg.error is None and case_passes(spec, cg.answer)[0]
        case.baseline_recheck = bg.error is None and case_passes(spec, bg.answer)[0]
        case.recheck_answer = cg.answer
        counts[discordant] += 1
        changed[discordant] += case.flaky
    return RecheckStats(
        discordant=counts[True],
        discordant_changed=changed[True],
        sampled=counts[False],
        sampled_changed=changed[False],
    )
