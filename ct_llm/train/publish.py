"""A trained adapter becomes a candidate: its registry row, and the recovery of a publish that a
kill interrupted.

A training publishes in three steps: `adapters/<version>/` is renamed into place (runner.py),
the registry row is inserted (`register_trained`), the job folder `checkpoints/<version>/` is
discarded. Killed between two of them, the next training of the tenant (under the same lock)
finds, in `recover_training`:

- temporary folders `adapters/.<version>.*` (a kill before the rename): deleted;
- a job whose version is registered (a kill after the row): the job folder is deleted;
- a job whose adapter folder is complete but unregistered (a kill between rename and row):
  adopted, i.e. registered now, exactly as the training would have;
- a folder of the tenant's adapter line with neither row nor job: quarantined
  (`adapters/.orphans/`).

Adopt rather than quarantine, for adapters: a training costs minutes to hours of accelerator
time; the job record (written under the tenant's training lock before training began) proves
ct-llm started this very version, and the manifest's hashes prove the folder is what it wrote.
Adopted, it is only a candidate: eval and the gate still decide whether it is ever served. A
folder that fails either proof is quarantined, and its job, if any, stays to be resumed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ct_llm import leftovers
from ct_llm.errors import IntegrityError
from ct_llm.integrity import recorded_files, verify_folder
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ModelVersion
from ct_llm.train.checkpoints import TrainingJob, interrupted_jobs
from ct_llm.train.manifest import read_manifest
from ct_llm.workspace import Workspace

log = logging.getLogger(__name__)


def candidate_result(mv: ModelVersion) -> dict[str, Any]:
    """What `ct-llm train` reports about a registered candidate."""
    info = mv.info or {}
    return {
        "version": mv.id,
        "path": mv.path,
        "dataset_version": mv.dataset_version,
        "parent_version": mv.parent_version,
        "resumed": info.get("resumed", False),
        "metrics": info.get("metrics", {}),
    }


def register_trained(
    ws: Workspace,
    job: TrainingJob,
    job_folder: Path,
    metrics: dict[str, Any],
    *,
    resumed: bool,
    adopted: bool = False,
) -> dict[str, Any]:
    """Register the job's adapter folder as a candidate (with its file hashes, so every later
    load checks the folder against the registry's copy), record the training in the lineage
    log, then discard the job: it is over."""
    output = ws.adapters_dir / job.version
    details: dict[str, Any] = {
        "dataset_version": job.dataset_version,
        "recipe": job.recipe_file,
        "overrides": job.overrides,
        "resumed": resumed,
        "metrics": metrics,
    }
    if adopted:
        details["adopted"] = True  # registered by the next run, after a kill
    info = {
        "recipe": job.recipe_file,
        "overrides": job.overrides,
        "warm_start": job.parent if job.init_adapter else None,
        "resumed": resumed,
        "metrics": metrics,
    }
    with session_scope(ws.database_url) as session:
        mv = registry.register_adapter(
            session,
            job.tenant,
            job.version,
            job.number,
            str(output),
            job.dataset_version,
            job.parent,
            info,
            files_sha256=recorded_files(output),
        )
        registry.record(session, job.tenant, job.version, "train", "candidate", "cli", details)
        result = candidate_result(mv)
    leftovers.discard(job_folder)
    return result


def _adopt(ws: Workspace, job: TrainingJob, job_folder: Path) -> dict[str, Any] | None:
    """Register a finished job's unregistered adapter, if it is provably what the job wrote;
    else quarantine the folder (the job stays, to be resumed) and return None."""
    final = ws.adapters_dir / job.version
    try:
        verify_folder(final)
        manifest = read_manifest(final) or {}
        claimed = tuple(manifest.get(k) for k in ("version", "tenant", "dataset_version"))
        expected = (job.version, job.tenant, job.dataset_version)
        if claimed != expected:
            raise IntegrityError(f"its manifest names {claimed}, the job record {expected}")
    except IntegrityError as e:
        leftovers.quarantine(final, ws.adapters_dir, f"not adopted: {e}")
        return None
    metrics = manifest.get("metrics") or {}
    result = register_trained(
        ws, job, job_folder, metrics, resumed="resumed_from_step" in metrics, adopted=True
    )
    log.warning(
        "%s was trained but not registered (the training was killed in between); its files "
        "match its manifest, so it is registered now as a candidate",
        job.version,
    )
    return result


def recover_training(ws: Workspace, tenant: str) -> list[dict[str, Any]]:
    """Clear what killed trainings of `tenant` left (see the module's docstring); call it holding
    the tenant's training lock. Returns the candidates of jobs found finished (adopted now, or
    registered before the kill), oldest first."""
    names = leftovers.version_names(f"{tenant}-{ws.config.adapter_name}")
    for area in (ws.adapters_dir, ws.checkpoints_dir):
        leftovers.remove_temporaries(area, names)
    with session_scope(ws.database_url) as session:
        registered = {mv.id: candidate_result(mv) for mv in registry.list_versions(session, tenant)}
    finished = []
    for job, job_folder in interrupted_jobs(ws.checkpoints_dir, tenant):
        if job.version in registered:
            leftovers.discard(job_folder)
            finished.append(registered[job.version])
        elif (ws.adapters_dir / job.version).is_dir():
            adopted = _adopt(ws, job, job_folder)
            if adopted is not None:
                registered[job.version] = adopted
                finished.append(adopted)
    for folder in leftovers.unregistered(ws.adapters_dir, names, set(registered)):
        leftovers.quarantine(folder, ws.adapters_dir, "no registry row and no training job")
    return finished
