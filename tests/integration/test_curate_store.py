"""Curation, cycle triggers, lineage and status on a real SQLite workspace (no model needed)."""

from __future__ import annotations

import json

import pytest

from ct_llm.curate.dataset import curate_dataset
from ct_llm.curate.layout import read_rows
from ct_llm.errors import NoDataError, RegistryError
from ct_llm.feedback.context import context_hash
from ct_llm.loop.cycle import run_cycle
from ct_llm.monitor.status import workspace_status
from ct_llm.registry import registry
from ct_llm.registry.lineage import explain_version
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, DatasetVersion, FeedbackEvent

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(empty_workspace):  # type: ignore[no-untyped-def]
    """These tests check the pipeline's plumbing with a few users and templated texts; the
    per-user cap (2% of a version by default) and near-duplicate removal have their own tests,
    so here they are off."""
    empty_workspace.config.curate.guards.max_user_share = 1.0
    empty_workspace.config.curate.near_dup = False
    return empty_workspace


def test_templated_feedback_is_near_duplicate_and_dropped(empty_workspace):
    ws = empty_workspace
    ws.config.curate.guards.max_user_share = 1.0
    seed_feedback(ws, "default", 20)  # the same question and answers but for a number
    manifest = curate_dataset(ws, "default").manifest
    rows = sum(n for c in manifest["counts"].values() for n in c.values())
    near = manifest["drops"]["near_duplicate"]
    assert rows + near == 60  # 20 edit pairs, 20 SFT rows, 20 KTO rows
    # Short texts (~30 characters) give MinHash few shingles, so not every copy is caught.
    assert near >= 0.6 * 57


def seed_feedback(  # type: ignore[no-untyped-def]
    ws, tenant: str, n: int, offset: int = 0, *, asked_from: int | None = None, days: int = 60
) -> None:
    """n edits + thumbs down on "How long is the return window? (k)"; k counts from `offset`,
    or from `asked_from` to ask the same questions as an earlier call."""
    with session_scope(ws.database_url) as s:
        for i in range(offset, offset + n):
            k = i if asked_from is None else asked_from + i - offset
            msgs = [{"role": "user", "content": f"How long is the return window? ({k})"}]
            ctx = context_hash(msgs)
            s.add(
                ChatResponse(
                    id=f"r{tenant}{i}",
                    tenant=tenant,
                    conversation_id=f"c{i}",
                    context_hash=ctx,
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
                    value=f"You have {days} days ({k}).",
                    response_id=f"r{tenant}{i}",
                    context_hash=ctx,
                    user_id=f"user{i}",
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
                    context_hash=ctx,
                    user_id=f"user{i}",
                )
            )


def test_curate_writes_an_immutable_versioned_dataset(ws):
    seed_feedback(ws, "default", 20)
    seed_feedback(ws, "other", 5)
    res = curate_dataset(ws, "default")
    assert res.version == "default-data-v1"
    files = {str(p.relative_to(res.path)) for p in res.path.rglob("*") if p.is_file()}
    assert {"dpo/train.parquet", "dpo/test.parquet", "kto/train.parquet", "manifest.json"} <= files
    manifest = json.loads((res.path / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["dpo"]["train"] + counts["dpo"]["test"] == 20  # the other tenant's 5 stay out
    assert counts["dpo"]["test"] > 0 and counts["dpo"]["train"] > 0
    assert sum(counts["sft"].values()) == 20 and sum(counts["kto"].values()) == 20
    assert manifest["source_events"]["count"] == 40
    assert (manifest["source_events"]["first_seq"], manifest["source_events"]["last_seq"]) == (
        1,
        40,
    )
    assert set(manifest["files"]) == files - {"manifest.json"}
    row = read_rows(res.path, "dpo")[0]
    assert set(row) == {"prompt", "chosen", "rejected"}
    assert row["chosen"][0]["content"].startswith("You have 60 days")
    assert row["rejected"][0]["content"] == "30 days."
    with session_scope(ws.database_url) as s:
        assert s.get(DatasetVersion, "default-data-v1").max_event_seq == 40
    # Only new events make the next version: with none, there is nothing to curate.
    with pytest.raises(NoDataError, match="since default-data-v1"):
        curate_dataset(ws, "default")
    seed_feedback(ws, "default", 8, offset=100)
    second = curate_dataset(ws, "default")
    assert second.manifest["parent"] == "default-data-v1"
    assert second.manifest["source_events"]["count"] == 16
    # Replay: a quarter of the new rows' count, drawn from the parent's training rows.
    assert second.manifest["replay"]["from"] == "default-data-v1"
    assert second.manifest["replay"]["rows"]["dpo"] == round(
        0.25
        * (second.manifest["counts"]["dpo"]["train"] - second.manifest["replay"]["rows"]["dpo"])
    )
    assert second.manifest["replay"]["superseded"] == 0


def test_replay_leaves_out_rows_the_new_feedback_supersedes(ws):
    """The policy changed: every prompt of the parent is answered again with "90 days", so no
    replayed row may still teach "60 days" on them."""
    seed_feedback(ws, "default", 20)
    curate_dataset(ws, "default")
    seed_feedback(ws, "default", 20, offset=100, asked_from=0, days=90)
    second = curate_dataset(ws, "default")
    replay = second.manifest["replay"]
    assert replay["superseded"] > 0
    assert replay["rows"].get("dpo", 0) == 0
    rows = read_rows(second.path, "dpo")
    assert rows and all("90 days" in r["chosen"][0]["content"] for r in rows)


def test_dry_run_writes_nothing_and_no_data_is_a_clear_error(ws):
    with pytest.raises(NoDataError, match="nothing to curate"):
        curate_dataset(ws, "default")
    seed_feedback(ws, "default", 3)
    res = curate_dataset(ws, "default", dry_run=True)
    assert res.version is None
    assert sum(n for kind in res.manifest["counts"].values() for n in kind.values()) == 9
    assert list(ws.datasets_dir.iterdir()) == []


def test_cycle_without_trigger_skips_and_records_why(ws):
    seed_feedback(ws, "default", 2)  # 4 usable events < default threshold 8
    res = run_cycle(ws, "default")
    assert res["trained"] is False
    assert "4 new usable feedback events < 8" in res["reason"]
    assert workspace_status(ws, "default")["last_cycle"]["outcome"] == "skipped"


def test_lineage_and_status_explain_a_version(ws):
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


def test_pii_never_reaches_the_dataset_files(ws):
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
    text = json.dumps(
        [read_rows(res.path, k, s) for k in ("dpo", "kto", "sft") for s in ("train", "test")]
    )
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "203.0.113.7", "7946 0958"):
        assert secret not in text
    assert "<EMAIL>" in text and "<CARD>" in text and "<IP>" in text and "<PHONE>" in text
    manifest = json.loads((res.path / "manifest.json").read_text())
    # Each placeholder in the files counts: the edit is both a DPO pair and an SFT example.
    assert manifest["pii_scrubbed"] == {"CARD": 2, "EMAIL": 2, "IP": 2, "PHONE": 2}
