"""What a training killed while publishing its adapter leaves, and what the next run makes of it
(train/publish.py, leftovers.py): the states are built by hand, so no model is trained here.
The real kill is tests/integration/test_kill_while_publishing.py."""

from __future__ import annotations

import json
from pathlib import Path

from adapter_files import seal_adapter

from ct_llm import leftovers
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion
from ct_llm.train.candidate import interrupted_training, train_candidate
from ct_llm.train.checkpoints import TrainingJob, interrupted_jobs
from ct_llm.train.publish import recover_training
from ct_llm.workspace import Workspace

TENANT = "acme"
DATASET = "acme-data-v1"


def _job(ws: Workspace, number: int) -> TrainingJob:
    """The record a training writes before it starts, of a version trained on acme-data-v1."""
    with session_scope(ws.database_url) as s:
        if s.get(DatasetVersion, DATASET) is None:
            s.add(
                DatasetVersion(
                    id=DATASET,
                    tenant=TENANT,
                    path="",
                    manifest_sha256="",
                    counts={},
                    max_event_seq=0,
                )
            )
    job = TrainingJob(
        tenant=TENANT,
        version=registry.adapter_version_id(TENANT, ws.config.adapter_name, number),
        number=number,
        dataset_version=DATASET,
        dataset_path=str(ws.datasets_dir / DATASET),
        recipe_file="recipe.yaml",
        overrides=[],
        recipe={},
        parent=None,
        init_adapter=None,
    )
    job.save(ws.checkpoints_dir / job.version)
    return job


def _written_adapter(ws: Workspace, job: TrainingJob, **manifest: object) -> Path:
    """The adapter folder as the runner renames it into place (manifest last)."""
    folder = ws.adapters_dir / job.version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    fields = {"tenant": job.tenant, "dataset_version": job.dataset_version, "metrics": {"steps": 2}}
    return seal_adapter(folder, **{**fields, **manifest})


def test_a_finished_but_unregistered_training_is_adopted_by_resume(
    empty_workspace: Workspace,
) -> None:
    ws = empty_workspace
    job = _job(ws, 1)
    folder = _written_adapter(ws, job)
    assert interrupted_training(ws, TENANT) == job.version  # so a cycle resumes it
    result = train_candidate(ws, TENANT, resume=True)  # nothing left to train: no model loaded
    assert result["version"] == job.version and result["metrics"] == {"steps": 2}
    with session_scope(ws.database_url) as s:
        mv = registry.get_version(s, TENANT, job.version)
        assert mv.state == "candidate" and mv.path == str(folder)
        assert (
            registry.pinned_files(mv) == json.loads((folder / "manifest.json").read_text())["files"]
        )
        train = [e for e in registry.history(s, TENANT, job.version) if e.action == "train"]
        assert train[0].details["adopted"] is True
    assert interrupted_jobs(ws.checkpoints_dir, TENANT) == []
    assert not (ws.checkpoints_dir / job.version).exists()


def test_a_tampered_or_foreign_folder_is_quarantined_not_registered(
    empty_workspace: Workspace,
) -> None:
    ws = empty_workspace
    tampered_job = _job(ws, 1)
    tampered = _written_adapter(ws, tampered_job)
    (tampered / "adapter_model.safetensors").write_bytes(b"other weights")
    other_job = _job(ws, 2)
    _written_adapter(ws, other_job, dataset_version="acme-data-v9")  # not what the job trained
    jobless = ws.adapters_dir / registry.adapter_version_id(TENANT, ws.config.adapter_name, 3)
    jobless.mkdir()
    someone_elses = ws.adapters_dir / "globex-assistant-v1"  # another tenant's: not touched
    someone_elses.mkdir()

    assert recover_training(ws, TENANT) == []
    with session_scope(ws.database_url) as s:
        assert registry.list_versions(s, TENANT) == []
    orphans = sorted(p.name for p in (ws.adapters_dir / leftovers.ORPHANS).iterdir())
    assert [o.rsplit("-", 1)[0] for o in orphans] == [
        "acme-assistant-v1",
        "acme-assistant-v2",
        "acme-assistant-v3",
    ]
    assert sorted(p.name for p in ws.adapters_dir.iterdir()) == [
        ".orphans",
        "globex-assistant-v1",
    ]
    # The jobs stay: `train --resume` trains the last steps again and writes the adapter anew.
    assert [j.version for j, _ in interrupted_jobs(ws.checkpoints_dir, TENANT)] == [
        "acme-assistant-v1",
        "acme-assistant-v2",
    ]


def test_a_job_left_after_its_registration_is_discarded(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    job = _job(ws, 1)
    folder = _written_adapter(ws, job)
    (ws.checkpoints_dir / job.version / "trainer" / "checkpoint-2").mkdir(parents=True)
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, TENANT, job.version, 1, str(folder), None, None, {})
    finished = recover_training(ws, TENANT)
    assert [r["version"] for r in finished] == [job.version]
    assert not (ws.checkpoints_dir / job.version).exists()


def test_temporary_folders_of_killed_writes_are_removed(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    ws.checkpoints_dir.mkdir(exist_ok=True)
    ours = [
        ws.adapters_dir / ".acme-assistant-v1.k3j2l1.tmp",  # atomic_directory's
        ws.adapters_dir / ".acme-assistant-v2.search-x8y7",  # a search's trials
        ws.checkpoints_dir / ".acme-assistant-v1.discarded",  # a job deletion cut short
    ]
    kept = [
        ws.adapters_dir / ".globex-assistant-v1.k3j2l1.tmp",  # another tenant's, maybe running
        ws.adapters_dir / ".acme-assistant-extra-v1.aaa.tmp",  # not acme-assistant-v<N>
    ]
    for p in ours + kept:
        p.mkdir(parents=True)
    recover_training(ws, TENANT)
    assert [p.exists() for p in ours] == [False, False, False]
    assert [p.exists() for p in kept] == [True, True]


def test_names_and_temporaries_are_matched_exactly() -> None:
    names = leftovers.version_names("a.b-data")
    assert names.fullmatch("a.b-data-v12")
    assert not names.fullmatch("axb-data-v1")  # the dot is literal
    assert not names.fullmatch("a.b-data-v1x")
    assert leftovers.is_temporary(".a.b-data-v3.x1y2.tmp", names)
    assert not leftovers.is_temporary(".a.b-data-v3x.tmp", names)
    assert not leftovers.is_temporary(".orphans", names)
