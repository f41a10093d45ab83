from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ct_llm.loop.decision import (
    CycleRecord,
    RetryState,
    backoff_delay,
    decide_cycle,
    retry_state,
)
from ct_llm.loop.triggers import TriggerDecision

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
FIRED = TriggerDecision("volume", True, 20, 8, "20 new usable feedback events >= 8")
QUIET = TriggerDecision("volume", False, 2, 8, "2 new usable feedback events < 8")
NO_FAILURES = RetryState(0, None, None, None)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def test_backoff_doubles_and_is_capped():
    assert [backoff_delay(n, 300, 3600) for n in (1, 2, 3, 4, 5)] == [300, 600, 1200, 2400, 3600]
    assert backoff_delay(10_000, 300, 3600) == 3600  # no overflow for absurd counts


def test_retry_state_counts_failures_since_the_last_verdict():
    records = [
        CycleRecord(ago(10), "failed:eval", True),
        CycleRecord(ago(30), "failed:train", False),
        CycleRecord(ago(90), "rejected", True),
        CycleRecord(ago(200), "failed:curate", False),
    ]
    state = retry_state(records, base_s=300, max_s=3600)
    assert state.consecutive_failures == 2 and state.last_failure == "failed:eval"
    assert state.retry_at == ago(10) + timedelta(seconds=600)
    assert retry_state(records[2:], base_s=300, max_s=3600) == NO_FAILURES
    assert retry_state([], base_s=300, max_s=3600) == NO_FAILURES


def decide(triggers=(FIRED,), retry=NO_FAILURES, **kw):
    args = {"now": NOW, "force": False, "canary": None, "new_usable_events": 20}
    args["pending_work"] = None
    args.update(kw)
    return decide_cycle(list(triggers), retry, **args)


def test_runs_when_a_trigger_fired_and_says_why_not_otherwise():
    assert decide().run and decide().reason == FIRED.reason
    quiet = decide([QUIET], new_usable_events=2)
    assert not quiet.run and quiet.skip == "no_trigger"
    assert quiet.reason == "no trigger fired: 2 new usable feedback events < 8"


def test_a_fired_trigger_without_new_data_declines():
    sched = TriggerDecision("schedule", True, 1.0, 0.0, "schedule '0 2 * * *' was due")
    idle = decide([QUIET, sched], new_usable_events=0)
    assert not idle.run and idle.skip == "no_new_data"
    pending = decide([QUIET, sched], new_usable_events=0, pending_work="train on d-v3")
    assert pending.run


def test_backoff_window_declines_with_until_when_and_force_overrides():
    failing = RetryState(2, ago(5), "failed:train", ago(5) + timedelta(minutes=10))
    held = decide(retry=failing)
    assert not held.run and held.skip == "backoff"
    assert "2 consecutive failed cycle(s)" in held.reason
    assert "next attempt after 2025-03-01T12:05:00+00:00" in held.reason
    forced = decide(retry=failing, force=True)
    assert forced.run and forced.retry and forced.reason == "forced"


def test_after_the_backoff_a_failure_is_retried_even_without_a_trigger():
    failed = RetryState(1, ago(20), "failed:eval", ago(15))
    retry = decide([QUIET], retry=failed, new_usable_events=0, pending_work="evaluate v7")
    assert retry.run and retry.retry and "evaluate v7" in retry.reason
    # Nothing left to redo and nothing new: the failure is moot until a trigger fires.
    moot = decide([QUIET], retry=failed, new_usable_events=0)
    assert not moot.run and moot.skip == "no_trigger"


def test_a_canary_in_flight_blocks_even_a_forced_cycle():
    d = decide(canary="acme-assistant-v4", force=True)
    assert not d.run and d.skip == "canary_in_flight" and "acme-assistant-v4" in d.reason
