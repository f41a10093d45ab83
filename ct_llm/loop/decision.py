"""Whether a cycle runs now: the triggers, failed cycles and their backoff, a canary in flight.
Pure: recorded facts in, a decision with its reason out; loop/cycle.py gathers the facts.

A failed cycle is retried on a later run, not in a loop inside the failed one: the next
`ct-llm cycle` (a scheduler tick, a CronJob) retries once the backoff since the last failure has
passed, `base * 2^(failures - 1)` capped at `max`, and declines before then, saying until when.
A transient fault (the vLLM server restarting, a full disk being cleaned) gets retried soon; a
persistent one (a broken recipe) costs one attempt per `max` instead of one per tick. `--force`
runs regardless; any cycle that trains and reaches a verdict (deployed or rejected) ends the
run of failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from ct_llm.loop.triggers import TriggerDecision

SkipCode = Literal["no_trigger", "backoff", "canary_in_flight", "no_new_data", "busy"]


@dataclass(frozen=True)
class CycleRecord:
    """A past cycle that ran (declined checks are not records of this kind)."""

    at: datetime
    outcome: str
    """`deployed`, `rejected` or `failed:<stage>`."""
    trained: bool

    @property
    def failed(self) -> bool:
        return self.outcome.startswith("failed")


@dataclass(frozen=True)
class RetryState:
    consecutive_failures: int
    last_failure_at: datetime | None
    last_failure: str | None
    """Outcome of the last failure, e.g. `failed:train`."""
    retry_at: datetime | None
    """When the next attempt is allowed; None without failures."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("last_failure_at", "retry_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 1)."""
    # min() before the power would still overflow a float for absurd counts; cap the exponent.
    return min(base_s * 2 ** min(failures - 1, 60), max_s)


def retry_state(records: Sequence[CycleRecord], *, base_s: float, max_s: float) -> RetryState:
    """Consecutive failures at the head of `records` (newest first) and when to retry."""
    failures = 0
    for r in records:
        if not r.failed:
            break
        failures += 1
    if failures == 0:
        return RetryState(0, None, None, None)
    last = records[0]
    retry_at = last.at + timedelta(seconds=backoff_delay(failures, base_s, max_s))
    return RetryState(failures, last.at, last.outcome, retry_at)


@dataclass(frozen=True)
class CycleDecision:
    run: bool
    reason: str
    skip: SkipCode | None = None
    retry: bool = False
    """The run is (also) a retry of a failed cycle."""


def decide_cycle(
    triggers: Sequence[TriggerDecision],
    retry: RetryState,
    *,
    now: datetime,
    force: bool,
    canary: str | None,
    new_usable_events: int,
    pending_work: str | None,
) -> CycleDecision:
    """Run or decline, in this order of precedence:

    1. a canary under evaluation: decline, even with --force (its deploy step would be refused:
       one canary per tenant; the canary watcher promotes or rolls it back first);
    2. inside the backoff window after failures: decline unless forced;
    3. --force: run;
    4. failures whose backoff has passed: run, as a retry, if there is something to redo;
    5. no trigger fired: decline;
    6. a trigger fired but there is nothing new to learn from (the schedule, drift without new
       feedback): decline, since retraining on the same data gives the same candidate.

    `pending_work` names work a failed or interrupted cycle left (a dataset never trained on, a
    candidate never evaluated, a training to resume); it is redone before new feedback is
    curated."""
    fired = [t for t in triggers if t.fired]
    if canary is not None:
        return CycleDecision(
            False,
            f"canary {canary} is still under evaluation; the next candidate waits until it is "
            "promoted or rolled back (`ct-llm canary --apply`, `ct-llm promote`, "
            "`ct-llm rollback`)",
            "canary_in_flight",
        )
    failing = retry.consecutive_failures > 0 and retry.retry_at is not None
    if failing and now < retry.retry_at and not force:  # type: ignore[operator]
        return CycleDecision(
            False,
            f"backing off after {retry.consecutive_failures} consecutive failed cycle(s) "
            f"(last: {retry.last_failure} at {_iso(retry.last_failure_at)}); next attempt "
            f"after {_iso(retry.retry_at)} (`ct-llm cycle --force` runs now)",
            "backoff",
        )
    if force:
        return CycleDecision(True, "forced", retry=failing)
    has_work = new_usable_events > 0 or pending_work is not None
    if failing and has_work:
        what = f": {pending_work}" if pending_work else ""
        return CycleDecision(
            True,
            f"retrying after {retry.consecutive_failures} failed cycle(s) (last: "
            f"{retry.last_failure} at {_iso(retry.last_failure_at)}){what}",
            retry=True,
        )
    if not fired:
        return CycleDecision(
            False, "no trigger fired: " + "; ".join(t.reason for t in triggers), "no_trigger"
        )
    why = "; ".join(t.reason for t in fired)
    if not has_work:
        return CycleDecision(False, f"{why}; but no new usable feedback to train on", "no_new_data")
    return CycleDecision(True, why)


def _iso(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat(timespec="seconds")
