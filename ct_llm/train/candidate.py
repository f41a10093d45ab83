"""`ct-llm train`: train a candidate adapter on a dataset version and register it.

The adapter lands in `adapters/<tenant>-<adapter_name>-v<N>/` (written atomically by the runner)
and in the registry as a `candidate`, with its dataset version and parent (the production
adapter at the time) as lineage.
"""

from __future__ import annotations

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
from ct_llm.workspace import Workspace


def train_candidate(
    ws: Workspace,
    tenant: str,
    *,
    recipe_path: str | None = None,
    overrides: list[str] | None = None,
    dataset_version: str | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    from ct_llm.train.recipe import load_recipe

    recipe_file = resolve_resource(recipe_path or ws.config.recipe)
    recipe = load_recipe(recipe_file, overrides or [])
    max_rank = ws.config.serving.max_lora_rank
    if recipe.lora.r > max_rank:
        # Minutes of training for an adapter the server would refuse: say so before starting.
        raise ConfigError(
            f"recipe lora.r={recipe.lora.r} exceeds the serving limit serving.max_lora_rank="
            f"{max_rank}; train with lora.r={max_rank} or lower, or raise the server's limit"
        )
    with job_lock(ws.locks_dir, "training", tenant):
        return _train_locked(ws, tenant, recipe, recipe_file, overrides, dataset_version, on_log)


def _train_locked(
    ws: Workspace,
    tenant: str,
    recipe: Any,
    recipe_file: Path,
    overrides: list[str] | None,
    dataset_version: str | None,
    on_log: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    base_dir = ws.require_base_model()
    with session_scope(ws.database_url) as session:
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
        dataset_id, dataset_dir = ds.id, Path(ds.path)
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        parent = prod.model_version if prod else None
        # Continuous training: start from what users get today, so each cycle refines the
        # production adapter instead of relearning everything from the base model.
        init_adapter = Path(registry.get_version(session, tenant, parent).path) if parent else None
        version_id, number = registry.next_adapter_version(session, tenant, ws.config.adapter_name)

    from ct_llm.train.runner import train_adapter

    output = ws.adapters_dir / version_id
    metrics = train_adapter(
        recipe, base_dir, dataset_dir, output, init_adapter=init_adapter, on_log=on_log
    )
    info = {
        "recipe": str(recipe_file),
        "overrides": list(overrides or []),
        "warm_start": parent,
        "metrics": metrics,
    }
    with session_scope(ws.database_url) as session:
        registry.register_adapter(
            session, tenant, version_id, number, str(output), dataset_id, parent, info
        )
        registry.record(
            session,
            tenant,
            version_id,
            "train",
            "candidate",
            "cli",
            {
                "dataset_version": dataset_id,
                "recipe": str(recipe_file),
                "overrides": list(overrides or []),
                "metrics": metrics,
            },
        )
    return {
        "version": version_id,
        "path": str(output),
        "dataset_version": dataset_id,
        "parent_version": parent,
        "metrics": metrics,
    }
