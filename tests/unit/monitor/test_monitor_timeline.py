"""Version changes and transitions from lineage events (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ct_llm.monitor.timeline import VersionChange, transition_rows, version_changes


def ev(at: str, action: str, outcome: str, version: str, **details: Any) -> dict[str, Any]:
    return {
        "at": at,
        "action": action,
        "outcome": outcome,
        "version": version,
        "actor": "cli",
        "details": details,
    }


def test_version_changes_mark_each_promotion_and_rollback_once() -> None:
    events = [
        ev("2026-01-03T15:00:00+00:00", "rollback", "rejected", "v2", traffic_to="v1"),
        ev("2026-01-03T15:00:00+00:00", "rollback", "restored", "v1", replaces="v2"),
        ev("2026-01-02T06:00:00+00:00", "promote", "production", "v2", previous="v1"),
        ev("2026-01-02T07:00:00+00:00", "promote", "failed", "v3", error="boom"),
        ev("2026-01-01T00:00:00+00:00", "deploy", "canary", "v2"),
        ev("2026-01-04T00:00:00+00:00", "rollback", "failed", "v1"),
    ]
    changes = version_changes(events)
    assert [(c.action, c.version, c.traffic_to) for c in changes] == [
        ("promote", "v2", "v2"),
        ("rollback", "v2", "v1"),
    ]
    assert changes[0].label == "promoted v2" and changes[1].label == "rolled back v2"
    assert changes[1].when == "2026-01-03 15:00 UTC"
    assert VersionChange.from_dict(changes[1].to_dict()) == changes[1]


@pytest.mark.parametrize(
    ("at", "day", "fraction"),
    [
        ("2026-01-02T06:00:00+00:00", "2026-01-02", 0.25),
        ("2026-01-02T18:00:00", "2026-01-02", 0.75),  # naive: UTC, as SQLite returns it
        ("2026-01-02T01:00:00+02:00", "2026-01-01", 23 / 24),  # another zone: its UTC day
    ],
)
def test_a_change_is_placed_on_its_utc_day(at: str, day: str, fraction: float) -> None:
    c = VersionChange(at, "promote", "v", "v", "cli")
    assert c.day == day and c.day_fraction == pytest.approx(fraction)


def test_transition_rows_keep_order_and_fill_from_details() -> None:
    events = [
        ev("t2", "transition", "rejected", "v2", **{"from": "canary", "to": "rejected"}),
        ev("t1", "gate", "approved", "v2"),
        ev("t0", "transition", "approved", "v2", reason="every rule passed"),
    ]
    assert transition_rows(events) == [
        {"at": "t2", "version": "v2", "from": "canary", "to": "rejected", "actor": "cli",
         "reason": ""},
        {"at": "t0", "version": "v2", "from": None, "to": "approved", "actor": "cli",
         "reason": "every rule passed"},
    ]  # fmt: skip
