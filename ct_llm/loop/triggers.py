"""Triggers decide whether a cycle trains. Pure functions: inputs in, a recorded decision out.

Each decision carries the inputs it was computed from, so the lineage log's `cycle` record
answers "why did (or didn't) this cycle train" without re-running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ct_llm.loop.drift import (
    DriftMetric,
    DriftTest,
    VoteCounts,
    normal_isf,
    rating_drift,
    thumbs_down_drift,
)


@dataclass(frozen=True)
class TriggerDecision:
    name: str
    fired: bool
    value: float
    threshold: float
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def volume_trigger(new_examples: int, threshold: int) -> TriggerDecision:
    """Train when enough new usable feedback arrived since the last dataset version."""
    fired = new_examples >= threshold
    verb = ">=" if fired else "<"
    return TriggerDecision(
        "volume",
        fired,
        new_examples,
        threshold,
        f"{new_examples} new usable feedback events {verb} {threshold}",
        {"new_usable_events": new_examples, "min_new_examples": threshold},
    )


def next_fire_time(cron: str, tz: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the crontab expression names, in `tz`."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    # APScheduler answers "at or after"; cron times are whole minutes, so a microsecond later
    # is "strictly after" without skipping a fire time.
    nxt = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if nxt is None:  # a valid crontab always has a next time; guard the library's Optional
        raise ValueError(f"cron expression '{cron}' never fires")
    return nxt.astimezone(timezone.utc)


def schedule_trigger(
    cron: str, tz: str, last_trained_at: datetime | None, now: datetime
) -> TriggerDecision:
    """Train when a time named by the `cron` expression has passed since the last cycle that
    trained. Before any cycle trained, `last_trained_at` is the first recorded check, so a
    fresh workspace waits for its first scheduled time instead of training at once.

    `value` is the hours since the scheduled time (negative: hours until it); it fires at >= 0.
    """
    inputs: dict[str, Any] = {"cron": cron, "timezone": tz, "now": now.isoformat()}
    if last_trained_at is None:
        due = next_fire_time(cron, tz, now)
        return TriggerDecision(
            "schedule",
            False,
            round(-(due - now).total_seconds() / 3600, 3),
            0.0,
            f"first check: the schedule '{cron}' ({tz}) counts from now; next due {_iso(due)}",
            {**inputs, "since": None, "due_at": due.isoformat()},
        )
    due = next_fire_time(cron, tz, last_trained_at)
    hours = round((now - due).total_seconds() / 3600, 3)
    fired = due <= now
    since = f"since the last trained cycle or first check at {_iso(last_trained_at)}"
    reason = (
        f"schedule '{cron}' ({tz}) was due at {_iso(due)} {since}"
        if fired
        else f"schedule '{cron}' ({tz}) is next due at {_iso(due)}"
    )
    return TriggerDecision(
        "schedule",
        fired,
        hours,
        0.0,
        reason,
        {**inputs, "since": last_trained_at.isoformat(), "due_at": due.isoformat()},
    )


@dataclass(frozen=True)
class DriftPolicy:
    """What the drift trigger tests; mirrors the `triggers.drift` config section."""

    metrics: tuple[DriftMetric, ...] = ("thumbs_down_rate", "mean_rating")
    min_votes: int = 100
    alpha: float = 0.002
    min_thumbs_down_increase: float = 0.02
    min_rating_drop: float = 0.1


def drift_trigger(
    baseline: VoteCounts,
    recent: VoteCounts,
    policy: DriftPolicy,
    *,
    model_version: str,
    window_start: datetime,
    baseline_start: datetime,
    last_trained_at: datetime | None,
) -> TriggerDecision:
    """Train when the production model's recent feedback is significantly worse than its
    baseline (loop/drift.py has the tests and their measured error rates).

    `value` is the largest z statistic over the metrics (positive = worse), `threshold` the
    critical z at alpha / len(metrics) (Bonferroni). A cycle that trained after the recent window
    began has already acted on this window's evidence, so the trigger holds back until the
    window has moved past it: one drift episode starts one training, not one per check."""
    per_metric = policy.alpha / len(policy.metrics)
    tests: list[DriftTest] = []
    for metric in policy.metrics:
        if metric == "thumbs_down_rate":
            tests.append(
                thumbs_down_drift(
                    baseline,
                    recent,
                    min_votes=policy.min_votes,
                    alpha=per_metric,
                    min_increase=policy.min_thumbs_down_increase,
                )
            )
        else:
            tests.append(
                rating_drift(
                    baseline,
                    recent,
                    min_votes=policy.min_votes,
                    alpha=per_metric,
                    min_drop=policy.min_rating_drop,
                )
            )
    threshold = normal_isf(per_metric)
    zs = [t.z for t in tests if t.z is not None]
    value = round(max(zs), 4) if zs else 0.0
    worse = [t for t in tests if t.verdict == "worse"]
    acted = last_trained_at is not None and last_trained_at >= window_start
    inputs = {
        "model_version": model_version,
        "baseline_start": baseline_start.isoformat(),
        "window_start": window_start.isoformat(),
        "baseline": baseline.to_dict(),
        "recent": recent.to_dict(),
        "tests": [t.to_dict() for t in tests],
        "alpha_per_metric": per_metric,
        "last_trained_at": last_trained_at.isoformat() if last_trained_at else None,
    }
    if worse and acted:
        reason = (
            f"{_describe(worse)} of {model_version}, but a cycle already trained at "
            f"{_iso(last_trained_at)}, inside this window"
        )
        return TriggerDecision("drift", False, value, threshold, reason, inputs)
    if worse:
        return TriggerDecision(
            "drift", True, value, threshold, f"{_describe(worse)} of {model_version}", inputs
        )
    if all(t.verdict == "too few votes" for t in tests):
        reason = (
            f"too few votes to test {model_version} for drift (each window needs "
            f">= {policy.min_votes}; baseline {_counts(baseline)}, recent {_counts(recent)})"
        )
    else:
        reason = f"no significant drift of {model_version} (max z {value:.2f} < {threshold:.2f})"
    return TriggerDecision("drift", False, value, threshold, reason, inputs)


def _describe(worse: list[DriftTest]) -> str:
    parts = []
    for t in worse:
        label = "thumbs-down rate" if t.metric == "thumbs_down_rate" else "mean rating"
        parts.append(f"{label} {t.baseline:.3g} -> {t.recent:.3g} (z {t.z:.2f}, p {t.p_value:.2g})")
    return "quality drift: " + "; ".join(parts)


def _counts(c: VoteCounts) -> str:
    return f"{c.thumbs} thumbs, {c.ratings} ratings"


def _iso(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(timezone.utc).isoformat("T", "minutes")


def any_fired(decisions: list[TriggerDecision]) -> bool:
    return any(d.fired for d in decisions)
