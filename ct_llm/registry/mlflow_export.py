"""Export the registry to MLflow, for teams whose tooling reads MLflow (optional: `pip install
ct-llm[mlflow]`; ct-llm itself never needs it).

The mapping follows MLflow's own conventions:
  - one experiment per tenant (`ct-llm/<tenant>`), one run per adapter version, with the training
    settings as params, the latest eval's figures as metrics, the state and lineage as tags;
  - one registered model per tenant and adapter name (`<tenant>-<adapter_name>`), one model
    version per adapter version (source = the adapter folder);
  - MLflow aliases mirror ct-llm's: `production` and `canary` point at the same versions, and an
    alias ct-llm no longer has is removed.
The export is idempotent (runs and versions are found again by their `ct_llm.version` tag), so it
can run after every cycle; ct-llm's registry stays the source of truth.
"""

from __future__ import annotations

from typing import Any

from ct_llm.errors import ConfigError
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

VERSION_TAG = "ct_llm.version"


def eval_metrics(summary: dict[str, Any] | None) -> dict[str, float]:
    """Flat MLflow metrics from an eval summary (pure)."""
    if not summary:
        return {}
    out: dict[str, float] = {}
    for name, s in (summary.get("suites") or {}).items():
        out[f"{s.get('kind')}.{name}.pass_rate"] = float(s.get("candidate_pass_rate") or 0.0)
        out[f"{s.get('kind')}.{name}.production_pass_rate"] = float(
            s.get("baseline_pass_rate") or 0.0
        )
    judge = summary.get("judge") or {}
    for key in ("rate", "low", "high"):
        if judge.get(key) is not None:
            out[f"judge.win_rate{'' if key == 'rate' else '_' + key}"] = float(judge[key])
    for metric, v in (summary.get("rag") or {}).items():
        if isinstance(v, dict) and v.get("candidate") is not None:
            out[f"rag.{metric}"] = float(v["candidate"])
    p95 = ((summary.get("latency") or {}).get("candidate") or {}).get("p95_ms")
    if p95 is not None:
        out["latency.p95_ms"] = float(p95)
    leaks = (summary.get("canaries") or {}).get("candidate_leaks")
    if leaks is not None:
        out["canary_leaks"] = float(leaks)
    # MLflow metric keys allow alphanumerics, _ - . / and spaces.
    return {k.replace(":", "_"): v for k, v in out.items()}


def _client(tracking_uri: str) -> Any:
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        raise ConfigError(
            "MLflow is not installed; `pip install 'ct-llm[mlflow]'` (or mlflow-skinny) to export"
        ) from None
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


def _find_run(client: Any, experiment_id: str, version: str) -> Any:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{VERSION_TAG}` = '{version}'")
    return runs[0] if runs else None


def _find_model_version(client: Any, model: str, version: str) -> Any:
    found = client.search_model_versions(f"name = '{model}'")
    return next((mv for mv in found if mv.tags.get(VERSION_TAG) == version), None)


def export_to_mlflow(ws: Workspace, tenant: str, tracking_uri: str) -> dict[str, Any]:
    from ct_llm.evals.candidate import latest_report

    client = _client(tracking_uri)
    model_name = f"{tenant}-{ws.config.adapter_name}"
    with session_scope(ws.database_url) as session:
        versions = [
            {
                "id": v.id,
                "state": v.state,
                "path": v.path,
                "dataset": v.dataset_version,
                "parent": v.parent_version,
                "info": v.info or {},
                "summary": (r.summary if (r := latest_report(session, tenant, v.id)) else None),
            }
            for v in registry.list_versions(session, tenant)
            if v.kind == "adapter"
        ]
        aliases = {
            name: (a.model_version if (a := registry.get_alias(session, tenant, name)) else None)
            for name in (registry.PRODUCTION, registry.CANARY)
        }
    experiment = client.get_experiment_by_name(f"ct-llm/{tenant}")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(f"ct-llm/{tenant}")
    )
    if not client.search_registered_models(f"name = '{model_name}'"):
        client.create_registered_model(model_name, description=f"ct-llm adapters of {tenant}")
    numbers: dict[str, str] = {}
    for v in versions:
        run = _find_run(client, experiment_id, v["id"])
        if run is None:
            run = client.create_run(experiment_id, run_name=v["id"], tags={VERSION_TAG: v["id"]})
        run_id = run.info.run_id
        params = {"dataset_version": v["dataset"] or "", "parent_version": v["parent"] or ""}
        existing = client.get_run(run_id).data.params
        for key, value in params.items():
            if key not in existing:  # MLflow params are immutable once logged
                client.log_param(run_id, key, value)
        for key, value in eval_metrics(v["summary"]).items():
            client.log_metric(run_id, key, value)
        client.set_tag(run_id, "ct_llm.state", v["state"])
        client.set_terminated(run_id)
        mv = _find_model_version(client, model_name, v["id"])
        if mv is None:
            mv = client.create_model_version(
                model_name, source=v["path"], run_id=run_id, tags={VERSION_TAG: v["id"]}
            )
        client.set_model_version_tag(model_name, mv.version, "ct_llm.state", v["state"])
        numbers[v["id"]] = str(mv.version)
    current = client.get_registered_model(model_name).aliases
    for alias, version in aliases.items():
        if version in numbers:
            client.set_registered_model_alias(model_name, alias, numbers[version])
        elif alias in current:
            client.delete_registered_model_alias(model_name, alias)
    return {
        "tracking_uri": tracking_uri,
        "experiment": f"ct-llm/{tenant}",
        "registered_model": model_name,
        "versions": numbers,
        "aliases": {a: numbers.get(v) if v else None for a, v in aliases.items()},
    }
