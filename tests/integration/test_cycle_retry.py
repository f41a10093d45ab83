"""`ct-llm cycle` on a real SQLite workspace (no model needed): a failed stage leaves no
partial artifact and production where it was, is recorded, declined within its backoff and
retried after it from what it left; the drift trigger reads real feedback (SQLite and
PostgreSQL); the command's exit status says what happened.

The failure is a real one: the workspace has no base model imported, so training (and
evaluation) stop with the error a user would see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ct_llm.config import WorkspaceConfig
from ct_llm.errors import BusyError
from ct_llm.feedback.context import context_hash
from ct_llm.loop.check import evaluate_triggers, read_facts
from ct_llm.loop.cycle import CycleFailed, run_cycle
from ct_llm.loop.drift import VoteCounts
from ct_llm.loop.locks import job_lock
from ct_llm.loop.signals import vote_counts
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import (
    Alias,
    ChatResponse,
    DatasetVersion,
    FeedbackEvent,
    ModelVersion,
    utcnow,
)
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration
TENANT = "acme"
PROD = "acme-assistant-v1"


@pytest.fixture
def ws(empty_workspace: Workspace) -> Workspace:
    ws = empty_workspace
    ws.config.curate.guards.max_user_share = 1.0  # a few templated users; caps tested elsewhere
    ws.config.curate.near_dup = False
    ws.config.triggers.retry_backoff_s = 60.0
    with_production(ws)
    return ws


def with_production(ws: Workspace) -> None:
    """A production adapter in the registry (no files: nothing here serves or loads it)."""
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, TENANT, PROD, 1, str(ws.adapters_dir / PROD), None, None, {})
        registry.set_state(s, TENANT, PROD, "approved")
        registry.set_state(s, TENANT, PROD, "production")
        registry.set_alias(s, TENANT, registry.PRODUCTION, PROD)


def seed_edits(ws: Workspace, n: int, offset: int = 0) -> None:
    """n answers of production, each with an edit and a thumbs-down: 2n usable events."""
    with session_scope(ws.database_url) as s:
        for i in range(offset, offset + n):
            msgs = [{"role": "user", "content": f"Can I return item {i} after 40 days?"}]
            ctx = context_hash(msgs)
            rid = f"r{i}"
            s.add(
                ChatResponse(
                    id=rid,
                    tenant=TENANT,
                    conversation_id=f"c{i}",
                    context_hash=ctx,
                    messages=msgs,
                    response="No, 30 days.",
                    model_version=PROD,
                    latency_ms=1.0,
                )
            )
            for kind, value in (("edit", f"Yes: 60 days for item {i}."), ("thumbs", False)):
                s.add(
                    FeedbackEvent(
                        tenant=TENANT,
                        event_id=f"e{i}-{kind}",
                        payload_hash="x",
                        kind=kind,
                        value=value,
                        response_id=rid,
                        context_hash=ctx,
                        user_id=f"user{i}",
                        model_version=PROD,
                    )
                )


def snapshot(ws: Workspace) -> dict[str, object]:
    with session_scope(ws.database_url) as s:
        return {
            "aliases": sorted((a.name, a.model_version) for a in s.query(Alias)),
            "versions": sorted((v.id, v.state) for v in s.query(ModelVersion)),
            "datasets": sorted(d.id for d in s.query(DatasetVersion)),
        }


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def cycle_outcomes(ws: Workspace) -> list[str]:
    with session_scope(ws.database_url) as s:
        return [e.outcome for e in registry.history(s, TENANT) if e.action == "cycle"]


def test_a_failed_stage_leaves_production_alone_and_is_retried_with_backoff(ws):
    seed_edits(ws, 6)  # 12 usable events >= 8: the volume trigger fires
    before = snapshot(ws)

    with pytest.raises(CycleFailed, match="the cycle failed at train: base model") as failed:
        run_cycle(ws, TENANT)
    res = failed.value.result
    assert res["outcome"] == "failed:train" and res["trained"] is False
    assert res["triggers"]["volume"]["fired"]
    after = snapshot(ws)
    # Production and the registry did not move; the only artifact is the complete dataset
    # version that curation wrote (and the retry reuses); no adapter, checkpoint or temp dir.
    assert after["aliases"] == before["aliases"] == [("production", PROD)]
    assert after["versions"] == before["versions"]
    assert after["datasets"] == ["acme-data-v1"]
    assert "acme-data-v1/manifest.json" in files_under(ws.datasets_dir)
    assert not [f for f in files_under(ws.datasets_dir) if Path(f).name.startswith(".")]
    assert files_under(ws.adapters_dir) == [] and files_under(ws.checkpoints_dir) == []

    # Within the backoff: declined, saying until when; recorded as a skipped check.
    held = run_cycle(ws, TENANT)
    assert held["outcome"] == "skipped" and held["skip"] == "backoff"
    retry_at = datetime.fromisoformat(held["retry"]["retry_at"])
    last = datetime.fromisoformat(held["retry"]["last_failure_at"])
    assert retry_at - last == timedelta(seconds=60)
    assert f"next attempt after {retry_at.isoformat(timespec='seconds')}" in held["reason"]

    # After it: retried without a trigger of its own, on the dataset the failed cycle curated.
    later = utcnow() + timedelta(seconds=61)
    with pytest.raises(CycleFailed, match="2 failure\\(s\\) in a row") as again:
        run_cycle(ws, TENANT, now=later)
    assert again.value.result["retrying"] is True
    assert again.value.result["dataset"] == {"version": "acme-data-v1", "reused": True}
    assert snapshot(ws)["datasets"] == ["acme-data-v1"]

    # Two failures in a row: the wait doubles. --force runs regardless.
    held = run_cycle(ws, TENANT, now=later)
    assert held["skip"] == "backoff" and held["retry"]["consecutive_failures"] == 2
    gap = datetime.fromisoformat(held["retry"]["retry_at"]) - datetime.fromisoformat(
        held["retry"]["last_failure_at"]
    )
    assert gap == timedelta(seconds=120)
    with pytest.raises(CycleFailed):
        run_cycle(ws, TENANT, force=True, now=later)
    assert cycle_outcomes(ws) == [
        "failed:train",
        "skipped",
        "failed:train",
        "skipped",
        "failed:train",
    ]
    assert snapshot(ws)["aliases"] == [("production", PROD)]


def test_a_candidate_whose_eval_failed_is_evaluated_again_not_retrained(ws):
    seed_edits(ws, 6)
    with pytest.raises(CycleFailed):
        run_cycle(ws, TENANT)  # curates acme-data-v1, fails at train
    # As if the training had succeeded and the eval stage then failed (vLLM down).
    cand = "acme-assistant-v2"
    with session_scope(ws.database_url) as s:
        registry.register_adapter(
            s, TENANT, cand, 2, str(ws.adapters_dir / cand), "acme-data-v1", PROD, {}
        )
        registry.record(s, TENANT, cand, "cycle", "failed:eval", "cycle", {"trained": True})
    with pytest.raises(CycleFailed, match="failed at eval") as failed:
        run_cycle(ws, TENANT, now=utcnow() + timedelta(hours=1), server_url="http://127.0.0.1:9")
    res = failed.value.result
    assert res["resumed_candidate"] == cand and res["trained"] is False
    assert "evaluate acme-assistant-v2" in res["reason"]
    assert len(snapshot(ws)["versions"]) == 2  # nothing new was trained
    assert snapshot(ws)["aliases"] == [("production", PROD)]


def test_an_idle_cycle_declines_and_a_canary_in_flight_blocks_the_next(ws):
    seed_edits(ws, 1)
    idle = run_cycle(ws, TENANT)
    assert idle["trained"] is False and idle["skip"] == "no_trigger"
    assert "2 new usable feedback events < 8" in idle["reason"]
    assert set(idle["triggers"]) == {"volume", "drift"}
    for t in idle["triggers"].values():
        assert {"name", "fired", "value", "threshold", "reason", "inputs"} <= set(t)
    seed_edits(ws, 6, offset=1)
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, TENANT, registry.CANARY, "acme-assistant-v9", 0.1)
    blocked = run_cycle(ws, TENANT, force=True)
    assert blocked["skip"] == "canary_in_flight" and "acme-assistant-v9" in blocked["reason"]
    with job_lock(ws.locks_dir, "cycle", TENANT), pytest.raises(BusyError):
        run_cycle(ws, TENANT)
    assert cycle_outcomes(ws) == ["skipped", "skipped"]  # the busy attempt is not recorded


def add_votes(
    ws: Workspace,
    version: str,
    when: datetime,
    thumbs_down: int,
    thumbs_up: int,
    ratings: list[int],
    tag: str,
) -> None:
    """Each vote on its own logged answer (the drift trigger counts only those)."""
    with session_scope(ws.database_url) as s:
        votes = [("thumbs", False)] * thumbs_down + [("thumbs", True)] * thumbs_up
        votes += [("rating", r) for r in ratings]
        for i, (kind, value) in enumerate(votes):
            s.add(
                ChatResponse(
                    id=f"{tag}-r{i}",
                    tenant=TENANT,
                    messages=[{"role": "user", "content": "q"}],
                    response="a",
                    model_version=version,
                    latency_ms=1.0,
                )
            )
            s.add(
                FeedbackEvent(
                    tenant=TENANT,
                    event_id=f"{tag}-{i}",
                    payload_hash="x",
                    kind=kind,
                    value=value,
                    response_id=f"{tag}-r{i}",
                    model_version=version,
                    received_at=when,
                )
            )


def test_drift_trigger_reads_the_production_models_feedback(tmp_path, database_url):
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(database_url=database_url))
    now = utcnow()
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, TENANT, PROD, 1, str(ws.adapters_dir / PROD), None, None, {})
        registry.set_alias(s, TENANT, registry.PRODUCTION, PROD)
        s.get(Alias, (TENANT, "production")).updated_at = now - timedelta(days=10)
    # Baseline (days 10..1 ago): 10% thumbs-down, mean rating 4. Recent day: 30%, mean 3.
    add_votes(ws, PROD, now - timedelta(days=5), 30, 270, [4] * 150, "base")
    add_votes(ws, PROD, now - timedelta(hours=2), 45, 105, [3, 3, 4, 2] * 30, "recent")
    # Votes that must not count: another version's, and production's before its promotion.
    add_votes(ws, "other-v1", now - timedelta(hours=2), 50, 0, [1] * 50, "other")
    add_votes(ws, PROD, now - timedelta(days=12), 200, 0, [1] * 50, "before")

    with session_scope(ws.database_url) as s:
        recent = vote_counts(s, TENANT, PROD, now - timedelta(hours=24), now)
    assert recent == VoteCounts.from_votes(
        [("thumbs", False)] * 45
        + [("thumbs", True)] * 105
        + [("rating", r) for r in [3, 3, 4, 2] * 30]
    )
    facts = read_facts(ws, TENANT, now)
    assert facts.production == PROD and facts.baseline == VoteCounts(300, 30, 150, 600.0, 2400.0)
    drift = {t.name: t for t in evaluate_triggers(ws.config.triggers, facts, now)}["drift"]
    assert drift.fired, drift.reason
    assert "thumbs-down rate 0.1 -> 0.3" in drift.reason and "mean rating 4 -> 3" in drift.reason


def ct_llm(*args: str, ws: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ct_llm.cli", *args, "--workspace", str(ws)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cycle_exit_status_for_failed_declined_and_busy(ws):
    seed_edits(ws, 6)
    failed = ct_llm("cycle", "--json", "--tenant", TENANT, ws=ws.root)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["outcome"] == "failed:train"
    errors = failed.stderr.strip().splitlines()
    assert (
        errors[-1].startswith("error: the cycle failed at train")
        and "Traceback" not in failed.stderr
    )
    declined = ct_llm("cycle", "--json", "--tenant", TENANT, ws=ws.root)
    assert declined.returncode == 0 and json.loads(declined.stdout)["skip"] == "backoff"
    with job_lock(ws.locks_dir, "cycle", TENANT):
        busy = ct_llm("cycle", "--tenant", TENANT, ws=ws.root)
    assert busy.returncode == 3 and "another cycle of tenant 'acme' is running" in busy.stderr
    bad = ct_llm("cycle", "--tenant", TENANT, "oops", ws=ws.root)
    assert bad.returncode == 2 and "key=value" in bad.stderr


def test_a_crash_inside_training_leaves_no_job_behind(model_workspace, monkeypatch):
    """An unexpected error (not a user's) in the middle of training: recorded with its type and
    traceback; the job folder, which has no checkpoint to resume from, is removed."""
    import ct_llm.train.runner

    ws = model_workspace
    ws.config.curate.guards.max_user_share = 1.0
    ws.config.curate.near_dup = False
    with_production(ws)
    seed_edits(ws, 6)

    def exploding_training(*args, **kwargs):  # the failure injection, and nothing else
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(ct_llm.train.runner, "train_adapter", exploding_training)
    with pytest.raises(CycleFailed, match="failed at train: CUDA error") as failed:
        run_cycle(ws, TENANT)
    error = failed.value.result["error"]
    assert "stage" not in failed.value.result and error["stage"] == "train"
    assert error["type"] == "RuntimeError" and "exploding_training" in error["traceback"]
    assert files_under(ws.checkpoints_dir) == [] and files_under(ws.adapters_dir) == []
    assert snapshot(ws)["aliases"] == [("production", PROD)]
    with session_scope(ws.database_url) as s:
        last = [e for e in registry.history(s, TENANT) if e.action == "cycle"][-1]
    assert last.outcome == "failed:train" and last.details["error"]["type"] == "RuntimeError"
