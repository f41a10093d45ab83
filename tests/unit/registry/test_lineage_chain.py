"""The lineage chain's order and content: pure, from plain dicts."""

from __future__ import annotations

from ct_llm.registry.lineage import build_chain

DATASET = {
    "version": "t-ds-3",
    "counts": {"dpo": {"train": 10, "test": 2}},
    "source_events": {"count": 40, "first_seq": 101, "last_seq": 140},
}
ADAPTER = {"version": "t-a-v2", "parent_version": "t-a-v1"}
REPORTS = [{"id": "t-a-v2-20261126T1000Z", "path": "/r/1", "baseline": "t-a-v1"}]


def event(i: int, action: str, outcome: str, **details: object) -> dict:
    return {
        "id": i,
        "at": f"2026-11-26T10:0{i}:00",
        "action": action,
        "outcome": outcome,
        "actor": "cycle",
        "details": details,
    }


def test_chain_runs_from_events_to_deployments() -> None:
    events = [
        event(1, "train", "done"),
        event(2, "eval", "done"),
        event(3, "transition", "approved"),
        event(
            4,
            "gate",
            "approved",
            report="t-a-v2-20261126T1000Z",
            reasons=[{"rule": "judge", "passed": True}],
        ),
        event(5, "deploy", "canary"),
        event(6, "cycle", "deployed"),
        event(7, "promote", "production"),
    ]
    chain = build_chain(DATASET, ADAPTER, REPORTS, events)
    assert [c["link"] for c in chain] == [
        "events",
        "dataset",
        "adapter",
        "report",
        "decision",
        "deployment",
        "deployment",
    ]
    assert chain[0] == {"link": "events", "count": 40, "first_seq": 101, "last_seq": 140}
    assert chain[4]["outcome"] == "approved" and chain[4]["failed_rules"] == []
    assert [c["action"] for c in chain[5:]] == ["deploy", "promote"]
    assert chain[6]["event"] == 7


def test_a_rejected_candidate_names_its_failed_rules_and_has_no_deployment() -> None:
    reasons = [{"rule": "judge", "passed": False}, {"rule": "regression:general", "passed": True}]
    chain = build_chain(None, ADAPTER, [], [event(1, "gate", "rejected", reasons=reasons)])
    assert [c["link"] for c in chain] == ["adapter", "decision"]
    assert chain[1]["failed_rules"] == ["judge"]
