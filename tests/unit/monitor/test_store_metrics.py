"""The store's Prometheus metrics: families from a snapshot (pure) and the collector's cache."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ct_llm.monitor.store_metrics import StoreCollector, metric_families
from ct_llm.monitor.store_snapshot import CycleRow, StoreSnapshot

T = "acme"


def samples(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Render through a real registry and parse the exposition text back."""
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Fixed:
    def __init__(self, snap: StoreSnapshot) -> None:
        self.snap = snap

    def collect(self):  # type: ignore[no-untyped-def]
        return metric_families(self.snap, base_model="base-m", age_s=3.0)


def snapshot() -> StoreSnapshot:
    t, f = json.dumps(True), json.dumps(False)
    return StoreSnapshot(
        feedback=[
            (T, "v1", "thumbs", f, True, 3),
            (T, "v1", "thumbs", t, True, 1),
            (T, "v1", "thumbs", f, False, 6),  # older than the window
            (T, "v1", "rating", "4", True, 2),
            (T, "v1", "rating", "1", False, 2),
            (T, "v1", "edit", None, True, 5),
            (T, None, "thumbs", t, False, 2),
            (T, "v1", "rating", "true", True, 7),  # not a rating: counted as an event only
            ("globex", "g1", "thumbs", t, True, 1),
            (T, "made-up-1", "thumbs", f, True, 1),  # names no version the registry knows
            (T, "made-up-2", "thumbs", f, True, 1),
            (T, "g1", "thumbs", f, True, 1),  # another tenant's version: unknown for acme
            (T, "base-m", "thumbs", t, True, 1),  # chats the base model answered
        ],
        lineage=[
            (T, "cycle", "skipped", 40),
            (T, "cycle", "deployed", 2),
            (T, "promote", "production", 1),
            (T, "canary_check", "wait", 3),
        ],
        cycles=[
            CycleRow(T, "deployed", 1000.0, 412.5, {"volume": {"value": 20, "threshold": 8}}),
            CycleRow(
                T,
                "skipped",
                2000.0,
                None,
                {
                    "volume": {"fired": False, "value": 3, "threshold": 8},
                    "schedule": {"fired": True, "value": None, "threshold": 24},
                },
            ),
        ],
        aliases=[
            (T, "production", "v1", 1.0, 500.0),
            (T, "canary", "v2", 0.2, 1500.0),
            ("globex", "canary", "g2", 0.1, 1600.0),
        ],
        canary_checks=[(T, "v2", "wait", 1700.0), (T, "v0", "rollback", 100.0)],
        known_versions={T: frozenset({"v0", "v1", "v2"}), "globex": frozenset({"g1", "g2"})},
        window_h=24,
        read_s=0.25,
    )


def test_families_from_a_snapshot() -> None:
    s = samples(Fixed(snapshot()))

    def get(name: str, **labels: str) -> float | None:
        return s.get((name, tuple(sorted(labels.items()))))

    assert get("ct_llm_store_feedback_events_total", tenant=T, model_version="v1", kind="thumbs")
    assert (
        get("ct_llm_store_feedback_events_total", tenant=T, model_version="v1", kind="thumbs") == 10
    )
    assert (
        get("ct_llm_store_feedback_events_total", tenant=T, model_version="v1", kind="rating") == 11
    )
    # No version, invented versions and another tenant's version: all `unknown` (2 + 3).
    assert (
        get("ct_llm_store_feedback_events_total", tenant=T, model_version="unknown", kind="thumbs")
        == 5
    )
    assert get("ct_llm_store_thumbs_total", tenant=T, model_version="base-m", vote="up") == 1
    acme_versions = {
        labels["model_version"]
        for labels in (dict(k[1]) for k in s)
        if labels.get("tenant") == T and "model_version" in labels
    }
    assert acme_versions == {"v1", "unknown", "base-m"}
    assert get("ct_llm_store_thumbs_total", tenant=T, model_version="v1", vote="down") == 9
    assert get("ct_llm_store_thumbs_total", tenant=T, model_version="v1", vote="up") == 1
    assert get("ct_llm_store_ratings_total", tenant=T, model_version="v1") == 4
    assert get("ct_llm_store_rating_points_total", tenant=T, model_version="v1") == 10
    # The window: 3 down of 4 thumbs, ratings 4 and 4.
    assert get("ct_llm_recent_thumbs_down_rate", tenant=T, model_version="v1") == 0.75
    assert get("ct_llm_recent_mean_rating", tenant=T, model_version="v1") == 4.0
    assert get("ct_llm_recent_votes", tenant=T, model_version="v1", kind="thumbs") == 4
    assert get("ct_llm_recent_mean_rating", tenant="globex", model_version="g1") is None

    assert get("ct_llm_cycles_total", tenant=T, outcome="skipped") == 40
    assert get("ct_llm_registry_actions_total", tenant=T, action="promote", outcome="production")
    assert get("ct_llm_registry_actions_total", tenant=T, action="cycle", outcome="skipped") is None
    assert get("ct_llm_last_cycle_duration_seconds", tenant=T, outcome="deployed") == 412.5
    assert get("ct_llm_last_cycle_duration_seconds", tenant=T, outcome="skipped") is None
    assert get("ct_llm_last_cycle_timestamp_seconds", tenant=T, outcome="skipped") == 2000.0
    # Triggers come from the newest cycle (the skipped one), not the deployed one.
    assert get("ct_llm_trigger_value", tenant=T, trigger="volume") == 3
    assert get("ct_llm_trigger_fired", tenant=T, trigger="schedule") == 1
    assert get("ct_llm_trigger_value", tenant=T, trigger="schedule") is None
    assert get("ct_llm_trigger_threshold", tenant=T, trigger="schedule") == 24

    assert get("ct_llm_production_info", tenant=T, version="v1") == 1
    assert get("ct_llm_canary_weight", tenant=T, version="v2") == 0.2
    assert get("ct_llm_canary_since_timestamp_seconds", tenant=T, version="v2") == 1500.0
    # Only the current canary's last check; the old canary v0's is not shown.
    assert get("ct_llm_canary_last_check_timestamp_seconds", tenant=T, version="v2", action="wait")
    assert not any(
        k[0].startswith("ct_llm_canary_last_check") and ("version", "v0") in k[1] for k in s
    )
    assert get("ct_llm_store_up") == 1 and get("ct_llm_store_snapshot_age_seconds") == 3.0
    assert get("ct_llm_store_read_seconds") == 0.25


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_collector_reads_at_most_once_per_interval_and_survives_a_failed_read() -> None:
    clock, reads = Clock(), []
    snap = snapshot()

    def read() -> StoreSnapshot:
        reads.append(clock.now)
        if len(reads) == 3:
            raise RuntimeError("database is locked")
        return StoreSnapshot(
            feedback=snap.feedback, aliases=snap.aliases, read_at=clock.now, window_h=24
        )

    collector = StoreCollector("sqlite://", min_interval_s=30, read=read, clock=clock)
    registry = CollectorRegistry()
    registry.register(collector)
    assert reads == []  # registering describes the names without reading
    for _ in range(5):
        generate_latest(registry)
    assert reads == [1000.0]
    clock.now += 29
    generate_latest(registry)
    assert len(reads) == 1
    clock.now += 1
    s = samples(collector)
    assert len(reads) == 2
    assert s[("ct_llm_store_up", ())] == 1 and s[("ct_llm_store_snapshot_age_seconds", ())] == 0
    clock.now += 30
    s = samples(collector)  # the third read fails: the last snapshot stays, marked stale
    assert len(reads) == 3 and s[("ct_llm_store_up", ())] == 0
    assert s[("ct_llm_store_snapshot_age_seconds", ())] == 30
    assert s[("ct_llm_canary_weight", (("tenant", T), ("version", "v2")))] == 0.2


def test_a_slow_read_is_repeated_less_often() -> None:
    clock, reads = Clock(), []

    def slow_read() -> StoreSnapshot:
        reads.append(clock.now)
        import time

        time.sleep(0.05)  # 50 ms at max_busy 0.001 -> next read no sooner than 50 s later
        return StoreSnapshot()

    collector = StoreCollector(
        "sqlite://", min_interval_s=1, max_busy=0.001, read=slow_read, clock=clock
    )
    collector.snapshot()
    clock.now += 30
    collector.snapshot()
    assert len(reads) == 1
    clock.now += 30
    collector.snapshot()
    assert len(reads) == 2
    with pytest.raises(ValueError, match="max_busy"):
        StoreCollector("sqlite://", max_busy=0)
