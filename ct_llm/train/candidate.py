"""`ct-llm train`: train a candidate adapter on a dataset version and register it.

The adapter lands in `adapters/<tenant>-<adapter_name>-v<N>/` (written atomically by the runner)
and in the registry as a `candidate`, with its dataset version and parent (the production
adapter at the time) as lineage. While it trains, its checkpoints and job record live in
`checkpoints/<version>/`, so an interrupted run can be resumed (`checkpoints.py`); what a run
killed while publishing its adapter left is cleared by the next one first (`publish.py`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.config import resolve_resource
from ct_llm.curate.dataset import latest_dataset
from ct_llm.errors import ConfigError, NoDataError
from ct_llm.loop.locks import job_lock
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion
from ct_llm.train.checkpoints import TrainingJob, completed_step, interrupted_jobs
from ct_llm.train.publish import recover_training, register_trained
from ct_llm.train.recipe import recipe_to_dict
from ct_llm.workspace import Workspace


def train_candidate(
    ws: Workspace,
    tenant: str,
    *,
    recipe_path: str | None = None,
    overrides: list[str] | None = None,
    dataset_version: str | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    restart: bool = False,
    nproc: int = 1,
    accelerate_config: str | None = None,
    launcher_args: list[str] | None = None,
) -> dict[str, Any]:
    """Train, register and return a candidate. `resume` continues the tenant's interrupted
    training from its last complete checkpoint; `restart` discards it and starts anew. With
    `nproc` > 1 (or an accelerate config) the training runs data-parallel (`launch.py`)."""
    launch = None
    if nproc > 1 or accelerate_config:
        from ct_llm.train.launch import launch_command

        config = resolve_resource(accelerate_config) if accelerate_config else None
        if config is not None and not config.is_file():
            raise ConfigError(f"accelerate config {accelerate_config} not found")

        def launch(job_dir: Path, resumed: bool) -> list[str]:
            return launch_command(
                nproc,
                ws.root,
                job_dir,
                resume=resumed,
                accelerate_config=config,
                launcher_args=launcher_args,
            )

    with job_lock(ws.locks_dir, "training", tenant):
        finished = recover_training(ws, tenant)
        stale = interrupted_jobs(ws.checkpoints_dir, tenant)
        if resume:
            if not stale and finished:
                return finished[-1]  # it had finished all but its registration: now done
            if not stale:
                raise NoDataError(f"tenant '{tenant}' has no interrupted training to resume")
            job, folder = stale[-1]
            for _old, old_folder in stale[:-1]:
                shutil.rmtree(old_folder, ignore_errors=True)
            return _run(ws, job, folder, on_log, resume=True, launch=launch)
        for job, folder in stale:
            step = completed_step(folder / "trainer")
            if step and not restart:
                raise ConfigError(
                    f"the training of {job.version} was interrupted after step {step}; "
                    "`ct-llm train --resume` continues it, `--restart` discards it"
                )
            shutil.rmtree(folder, ignore_errors=True)  # nothing worth keeping
        job = _new_job(ws, tenant, recipe_path, overrides, dataset_version)
        folder = ws.checkpoints_dir / job.version
        job.save(folder)
        try:
            return _run(ws, job, folder, on_log, resume=False, launch=launch)
        except BaseException:
            # Failed before its first complete checkpoint: nothing to resume, so no job either
            # (a later `train` or cycle would otherwise find it and clear it up then).
            if not completed_step(folder / "trainer"):
                shutil.rmtree(folder, ignore_errors=True)
            raise


def interrupted_training(ws: Workspace, tenant: str) -> str | None:
    """The version of the tenant's interrupted training that has a checkpoint to resume from,
    or a written adapter to register (`train --resume` finishes either)."""
    for job, folder in reversed(interrupted_jobs(ws.checkpoints_dir, tenant)):
        if completed_step(folder / "trainer") or (ws.adapters_dir / job.version).is_dir():
            return job.version
    return None


def _new_job(
    ws: Workspace,
    tenant: str,
    recipe_path: str | None,
    overrides: list[str] | None,
    dataset_version: str | None,
) -> TrainingJob:
    with session_scope(ws.database_url) as session:
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        parent = prod.model_version if prod else None
        parent_path = Path(registry.get_version(session, tenant, parent).path) if parent else None
        recipe, recipe_file = _choose_recipe(ws, recipe_path, overrides, parent, parent_path)
        max_rank = ws.config.serving.max_lora_rank
        if recipe.lora.r > max_rank:
            # Minutes of training for an adapter the server would refuse: say so before starting.
            raise ConfigError(
                f"recipe lora.r={recipe.lora.r} exceeds the serving limit serving.max_lora_rank="
                f"{max_rank}; train with lora.r={max_rank} or lower, or raise the server's limit"
            )
        ws.require_base_model()
        if dataset_version:
            ds = session.get(DatasetVersion, dataset_version)
            if ds is None or ds.tenant != tenant:
                raise NoDataError(f"no dataset version '{dataset_version}' for tenant '{tenant}'")
        else:
            ds = latest_dataset(session, tenant)
            if ds is None:
                raise NoDataError(
                    f"tenant '{tenant}' has no dataset version yet; run `ct-llm curate` first"
                )
        # Continuous training: start from what users get today, so each cycle refines the
        # production adapter instead of relearning everything from the base model.
        init_adapter = None
        if parent_path is not None and recipe.start_from == "production":
            init_adapter = str(parent_path)
        version_id, number = registry.next_adapter_version(session, tenant, ws.config.adapter_name)
        return TrainingJob(
            tenant=tenant,
            version=version_id,
            number=number,
            dataset_version=ds.id,
            dataset_path=ds.path,
            recipe_file=recipe_file,
            overrides=list(overrides or []),
            recipe=recipe_to_dict(recipe),
            parent=parent,
            init_adapter=init_adapter,
        )


def _choose_recipe(
    ws: Workspace,
    recipe_path: str | None,
    overrides: list[str] | None,
    parent: str | None,
    parent_path: Path | None,
) -> tuple[Any, str]:
    """(recipe, where it came from). A recipe file when one is named; else the production
    adapter's own settings, recorded in its manifest, so a nightly candidate differs from
    production in its data only; else the workspace's default recipe."""
    from ct_llm.train.manifest import read_manifest
    from ct_llm.train.recipe import load_recipe, recipe_from_dict

    if recipe_path is None and parent_path is not None:
        manifest = read_manifest(parent_path) or {}
        if isinstance(manifest.get("recipe"), dict):
            source = f"{parent} (its manifest)"
            return recipe_from_dict(manifest["recipe"], source, overrides), source
    recipe_file = resolve_resource(recipe_path or ws.config.recipe)
    return load_recipe(recipe_file, overrides or []), str(recipe_file)


def _run(
    ws: Workspace,
    job: TrainingJob,
    folder: Path,
    on_log: Callable[[dict[str, Any]], None] | None,
    *,
    resume: bool,
    launch: Callable[[Path, bool], list[str]] | None = None,
) -> dict[str, Any]:
    from ct_llm.train.recipe import Recipe
    from ct_llm.train.runner import train_adapter

    output = ws.adapters_dir / job.version
    recipe = Recipe.model_validate(job.recipe)
    where = {
        "base_model_dir": ws.require_base_model(),
        "dataset_dir": Path(job.dataset_path),
        "output_dir": output,
        "init_adapter": Path(job.init_adapter) if job.init_adapter else None,
        "on_log": on_log,
        "lineage": job.lineage(),
    }
    if recipe.search is not None:
        if launch is not None:
            raise ConfigError(
                "a recipe with `search` trains in one process: drop --nproc / "
                "--accelerate-config (or the train: settings)"
            )
        from ct_llm.train.search import search_adapter

        metrics = search_adapter(recipe, **where)
    elif launch is not None:
        from ct_llm.train.launch import run_workers

        metrics = run_workers(launch(folder, resume), folder)
    else:
        metrics = train_adapter(recipe, checkpoint_dir=folder, resume=resume, **where)
    return register_trained(ws, job, folder, metrics, resumed=resume)
