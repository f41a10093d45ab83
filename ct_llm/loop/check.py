"""One check of a tenant: the facts read from the store, and the triggers over them.

`read_facts` does all the reading (and, with `triggers.prompt_drift` on, the embedding);
`evaluate_triggers` is pure over what it read, so a test can hand it any facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ct_llm.config import TriggerConfig
from ct_llm.loop import signals
from ct_llm.loop.decision import CycleRecord
from ct_llm.loop.drift import VoteCounts
from ct_llm.loop.triggers import (
    DriftPolicy,
    TriggerDecision,
    drift_trigger,
    schedule_trigger,
    volume_trigger,
)
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace


@dataclass(frozen=True)
class PromptShift:
    n_baseline: int
    n_recent: int
    statistic: float | None
    p_value: float | None
    window_start: datetime


@dataclass(frozen=True)
class Facts:
    """What one check reads from the store, in one transaction."""

    new_usable_events: int
    records: list[tuple[CycleRecord, str | None]]
    first_check_at: datetime | None
    production: str
    promoted_at: datetime | None
    canary: str | None
    untrained_dataset: str | None
    failed_candidate: str | None
    """The candidate of the last cycle, if that cycle failed after training it and the
    candidate still awaits a verdict (eval, gate or deploy failed)."""
    baseline: VoteCounts
    recent: VoteCounts
    baseline_start: datetime
    window_start: datetime
    prompts: PromptShift | None = None
    """The prompt-distribution test, when `triggers.prompt_drift` is on."""

    @property
    def last_trained_at(self) -> datetime | None:
        return next((r.at for r, _ in self.records if r.trained), None)


def read_facts(ws: Workspace, tenant: str, now: datetime) -> Facts:
    drift = ws.config.triggers.drift
    with session_scope(ws.database_url) as s:
        production, promoted_at = signals.production_model(s, tenant, ws.config.base_model)
        window_start = now - timedelta(hours=drift.window_h)
        baseline_start = window_start - timedelta(days=drift.baseline_days)
        if promoted_at is not None:
            # Only the production model's own time as production counts: before, it was a
            # canary on a slice of the traffic, or not served at all.
            baseline_start = max(baseline_start, promoted_at)
            window_start = max(window_start, promoted_at)
        baseline = recent = VoteCounts()
        if drift.enabled:
            if baseline_start < window_start:
                baseline = signals.vote_counts(s, tenant, production, baseline_start, window_start)
            recent = signals.vote_counts(s, tenant, production, window_start, now)
        records = signals.cycle_records(s, tenant)
        failed_candidate = None
        if records and records[0][0].failed and records[0][1] is not None:
            state = signals.version_state(s, tenant, records[0][1])
            failed_candidate = records[0][1] if state in ("candidate", "approved") else None
        return Facts(
            new_usable_events=signals.new_usable_events(s, tenant),
            records=records,
            first_check_at=signals.first_check_at(s, tenant),
            production=production,
            promoted_at=promoted_at,
            canary=signals.canary_version(s, tenant),
            untrained_dataset=signals.untrained_dataset(s, tenant),
            failed_candidate=failed_candidate,
            baseline=baseline,
            recent=recent,
            baseline_start=baseline_start,
            window_start=window_start,
            prompts=_prompt_shift(ws, tenant, now)
            if ws.config.triggers.prompt_drift.enabled
            else None,
        )


def _prompt_shift(ws: Workspace, tenant: str, now: datetime) -> PromptShift:
    """Embed a seeded sample of each window's prompts and run the permutation test. Windows as
    the quality drift's, without the promotion bound: what users ask does not depend on the
    model that answers."""
    import random

    from ct_llm.loop.prompt_drift import embed, mean_shift_test

    cfg, drift = ws.config.triggers.prompt_drift, ws.config.triggers.drift
    window_start = now - timedelta(hours=drift.window_h)
    baseline_start = window_start - timedelta(days=drift.baseline_days)
    pool = 5 * cfg.max_prompts
    with session_scope(ws.database_url) as s:
        base = signals.recent_prompts(s, tenant, baseline_start, window_start, pool)
        recent = signals.recent_prompts(s, tenant, window_start, now, pool)
    rng = random.Random(0)
    base = rng.sample(base, min(len(base), cfg.max_prompts))
    recent = rng.sample(recent, min(len(recent), cfg.max_prompts))
    if min(len(base), len(recent)) < cfg.min_prompts:
        return PromptShift(len(base), len(recent), None, None, window_start)
    stat, p = mean_shift_test(embed(base), embed(recent), permutations=cfg.permutations)
    return PromptShift(len(base), len(recent), stat, p, window_start)


def evaluate_triggers(config: TriggerConfig, facts: Facts, now: datetime) -> list[TriggerDecision]:
    """The configured triggers over the facts (pure)."""
    out = [volume_trigger(facts.new_usable_events, config.min_new_examples)]
    if config.schedule:
        since = facts.last_trained_at or facts.first_check_at
        out.append(schedule_trigger(config.schedule, config.timezone, since, now))
    if config.drift.enabled:
        d = config.drift
        policy = DriftPolicy(
            tuple(d.metrics), d.min_votes, d.alpha, d.min_thumbs_down_increase, d.min_rating_drop
        )
        out.append(
            drift_trigger(
                facts.baseline,
                facts.recent,
                policy,
                model_version=facts.production,
                window_start=facts.window_start,
                baseline_start=facts.baseline_start,
                last_trained_at=facts.last_trained_at,
            )
        )
    if facts.prompts is not None:
        from ct_llm.loop.prompt_drift import prompt_drift_trigger

        p = facts.prompts
        out.append(
            prompt_drift_trigger(
                p.n_baseline,
                p.n_recent,
                p.statistic,
                p.p_value,
                alpha=config.prompt_drift.alpha,
                min_prompts=config.prompt_drift.min_prompts,
                window_start=p.window_start,
                last_trained_at=facts.last_trained_at,
            )
        )
    return out
