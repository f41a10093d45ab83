from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ct_llm.loop.drift import VoteCounts
from ct_llm.loop.triggers import (
    DriftPolicy,
    any_fired,
    drift_trigger,
    next_fire_time,
    schedule_trigger,
    volume_trigger,
)

UTC = timezone.utc


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def test_volume_trigger_fires_at_threshold():
    assert volume_trigger(8, 8).fired
    below = volume_trigger(7, 8)
    assert not below.fired and "7 new usable feedback events < 8" in below.reason
    assert below.inputs == {"new_usable_events": 7, "min_new_examples": 8}
    assert any_fired([below, volume_trigger(9, 8)])
    assert not any_fired([below])


def test_next_fire_time_is_strictly_after():
    assert next_fire_time("0 2 * * *", "UTC", at(1, 1, 59)) == at(1, 2)
    assert next_fire_time("0 2 * * *", "UTC", at(1, 2)) == at(2, 2)
    # 02:00 in Paris is 01:00 UTC in winter (CET, UTC+1).
    assert next_fire_time("0 2 * * *", "Europe/Paris", at(1, 0)) == at(1, 1)


def test_schedule_fires_once_a_scheduled_time_passed_since_the_last_training():
    nightly = "0 2 * * *"
    trained = at(1, 2, 30)  # last night's cycle
    before = schedule_trigger(nightly, "UTC", trained, at(2, 1, 45))
    assert not before.fired and before.value == pytest.approx(-0.25)
    assert "next due at 2025-03-02T02:00" in before.reason
    due = schedule_trigger(nightly, "UTC", trained, at(2, 3, 0))
    assert due.fired and due.value == pytest.approx(1.0) and due.threshold == 0.0
    assert due.inputs["due_at"] == at(2, 2).isoformat()
    assert due.inputs["since"] == trained.isoformat()
    # Still due hours later if nothing trained in between (the 02:00 check was declined).
    assert schedule_trigger(nightly, "UTC", trained, at(2, 9)).fired


def test_schedule_on_a_fresh_workspace_waits_for_its_first_time():
    first = schedule_trigger("0 2 * * *", "UTC", None, at(1, 10))
    assert not first.fired and "first check" in first.reason
    assert first.inputs["due_at"] == at(2, 2).isoformat()


def drift(base: VoteCounts, recent: VoteCounts, last_trained: datetime | None = None, **kw):
    return drift_trigger(
        base,
        recent,
        DriftPolicy(**kw),
        model_version="acme-assistant-v3",
        window_start=at(9, 0),
        baseline_start=at(1, 0),
        last_trained_at=last_trained,
    )


def test_drift_fires_on_a_worse_thumbs_down_rate_and_records_its_inputs():
    d = drift(VoteCounts(2000, 200), VoteCounts(500, 100))  # 10% -> 20%
    assert d.fired and d.name == "drift"
    assert "thumbs-down rate 0.1 -> 0.2" in d.reason and "acme-assistant-v3" in d.reason
    assert d.value > d.threshold == pytest.approx(3.0902, abs=1e-4)  # z at 0.001 one-sided
    assert d.inputs["alpha_per_metric"] == pytest.approx(0.001)
    tests = {t["metric"]: t for t in d.inputs["tests"]}
    assert tests["thumbs_down_rate"]["verdict"] == "worse"
    assert tests["mean_rating"]["verdict"] == "too few votes"
    json.dumps(d.to_dict())  # recorded in the lineage log as JSON


def test_drift_on_ratings_alone_and_bonferroni():
    base = VoteCounts(0, 0, 1000, 4000.0, 16_900.0)  # mean 4.0, sd ~0.95
    recent = VoteCounts(0, 0, 300, 1110.0, 4_500.0)  # mean 3.7
    assert drift(base, recent).fired
    one = drift(base, recent, metrics=("mean_rating",))
    both = drift(base, recent)
    assert one.threshold < both.threshold  # alpha is split only when both are tested


def test_drift_does_not_fire_without_evidence():
    assert "too few votes" in drift(VoteCounts(50, 5), VoteCounts(500, 100)).reason
    calm = drift(VoteCounts(2000, 200), VoteCounts(500, 52))
    assert not calm.fired and "no significant drift" in calm.reason


def test_drift_fires_once_per_episode():
    base, recent = VoteCounts(2000, 200), VoteCounts(500, 100)
    acted = drift(base, recent, last_trained=at(9, 6))  # trained after the window began
    assert not acted.fired and "already trained" in acted.reason
    assert drift(base, recent, last_trained=at(8, 23)).fired  # an older training: fire
