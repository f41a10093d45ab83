"""Curation, cycle triggers, lineage and status on a real SQLite workspace (no model needed)."""

from __future__ import annotations

import json

import pytest

from ct_llm.curate.dataset import curate_dataset
from ct_llm.errors import NoDataError, RegistryError
from ct_llm.loop.cycle import run_cycle
from ct_llm.monitor.status import workspace_status
from ct_llm.registry import registry
from ct_llm.registry.lineage import explain_version
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, DatasetVersion, FeedbackEvent

pytestmark = pytest.mark.integration


def seed_feedback(ws, tenant: str, n: int, offset: int = 0) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ws.database_url) as s:
        for i in range(offset, offset + n):
            msgs = [{"role": "user", "content": f"How long is the return window? ({i})"}]
            s.add(
                ChatResponse(
                    id=f"r{tenant}{i}",
                    tenant=tenant,
                    conversation_id=f"c{i}",
                    messages=msgs,
                    response="30 days.",
                    model_version="base",
                    latency_ms=1.0,
                )
            )
            s.add(
                FeedbackEvent(
                    tenant=tenant,
                    event_id=f"e{i}-edit",
                    payload_hash="x",
                    kind="edit",
                    value=f"You have 60 days ({i}).",
                    response_id=f"r{tenant}{i}",
                )
            )
            s.add(
                FeedbackEvent(
                    tenant=tenant,
                    event_id=f"e{i}-up",
                    payload_hash="x",
                    kind="thumbs",
                    value=False,
                    response_id=f"r{tenant}{i}",
                )
            )


def test_curate_writes_an_immutable_versioned_dataset(empty_workspace):
    ws = empty_workspace
    seed_feedback(ws, "default", 20)
    seed_feedback(ws, "other", 5)
    res = curate_dataset(ws, "default")
    assert res.version == "default-data-v1"
    files = {p.name for p in res.path.iterdir()}
    assert {"dpo_train.jsonl", "dpo_heldout.jsonl", "kto_train.jsonl", "manifest.json"} <= files
    manifest = json.loads((res.path / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["dpo_train"] + counts["dpo_heldout"] == 20  # the other tenant's 5 stay out
    assert counts["dpo_heldout"] > 0 and counts["dpo_train"] > 0
    assert manifest["source_events"] == {"count": 40, "first_seq": 1, "last_seq": 40}
    row = json.loads((res.path / "dpo_train.jsonl").read_text().splitlines()[0])
    assert row["chosen"][0]["content"].startswith("You have 60 days")
    assert row["rejected"][0]["content"] == "30 days."
    with session_scope(ws.database_url) as s:
        assert s.get(DatasetVersion, "default-data-v1").max_event_seq == 40
    # a second run is a new version with the first as parent; nothing is overwritten
    assert curate_dataset(ws, "default").manifest["parent"] == "default-data-v1"


def test_dry_run_writes_nothing_and_no_data_is_a_clear_error(empty_workspace):
    ws = empty_workspace
    with pytest.raises(NoDataError, match="nothing to curate"):
        curate_dataset(ws, "default")
    seed_feedback(ws, "default", 3)
    res = curate_dataset(ws, "default", dry_run=True)
    assert res.version is None and sum(res.manifest["counts"].values()) == 6
    assert list(ws.datasets_dir.iterdir()) == []


def test_cycle_without_trigger_skips_and_records_why(empty_workspace):
    ws = empty_workspace
    seed_feedback(ws, "default", 2)  # 4 usable events < default threshold 8
    res = run_cycle(ws, "default")
    assert res["trained"] is False
    assert "4 new usable feedback events < 8" in res["reason"]
    assert workspace_status(ws, "default")["last_cycle"]["outcome"] == "skipped"


def test_lineage_and_status_explain_a_version(empty_workspace):
    ws = empty_workspace
    seed_feedback(ws, "default", 10)
    ds = curate_dataset(ws, "default")
    with session_scope(ws.database_url) as s:
        vid, n = registry.next_adapter_version(s, "default", "assistant")
        registry.register_adapter(
            s,
            "default",
            vid,
            n,
            str(ws.adapters_dir / vid),
            ds.version,
            None,
            {"metrics": {"loss": 0.5}},
        )
        registry.record(s, "default", vid, "gate", "approved", "test", {"reasons": []})
        registry.set_alias(s, "default", "production", vid)
    info = explain_version(ws, "default", "default-assistant-v1")
    assert info["dataset"]["version"] == ds.version
    assert info["dataset"]["source_events"]["count"] == 20
    assert [h["action"] for h in info["history"]] == ["gate"]
    assert info["undo"] and "rollback" in info["undo"]
    st = workspace_status(ws, "default")
    assert st["production"] == "default-assistant-v1" and st["feedback"]["total"] == 20
    with pytest.raises(RegistryError):
        explain_version(ws, "other", "default-assistant-v1")  # tenants never see each other


def test_pii_never_reaches_the_dataset_files(empty_workspace):
    ws = empty_workspace
    seed_feedback(ws, "default", 12)
    with session_scope(ws.database_url) as s:
        s.add(
            FeedbackEvent(
                tenant="default",
                event_id="pii-edit",
                payload_hash="x",
                kind="edit",
                value="Write to jane.doe@example.com; card 4111 1111 1111 1111 is refunded.",
                messages=[{"role": "user", "content": "I'm at 203.0.113.7, call +44 20 7946 0958"}],
                response="30 days.",
                conversation_id="c-pii",
            )
        )
    res = curate_dataset(ws, "default")
    text = "".join(p.read_text() for p in res.path.glob("*.jsonl"))
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "203.0.113.7", "7946 0958"):
        assert secret not in text
    assert "<EMAIL>" in text and "<CARD>" in text and "<IP>" in text and "<PHONE>" in text
    manifest = json.loads((res.path / "manifest.json").read_text())
    assert manifest["pii_scrubbed"] == {"CARD": 1, "EMAIL": 1, "IP": 1, "PHONE": 1}
