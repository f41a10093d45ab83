"""What runs in production: deploy, promote, rollback, lineage, status."""

from __future__ import annotations

from pathlib import Path

import typer

from ct_llm.cli.common import (
    JsonOpt,
    TenantOpt,
    WorkspaceOpt,
    app,
    emit,
    open_workspace,
)


@app.command()
def deploy(
    version: str = typer.Option(..., help="Approved version to deploy as canary."),
    weight: float = typer.Option(None, help="Share of conversations (default: config)."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Load an approved adapter into vLLM and route a share of conversations to it (canary)."""
    from ct_llm.deploy.rollout import deploy_canary
    from ct_llm.deploy.vllm_server import ensure_servers

    ws, tenant = open_workspace(workspace, tenant)
    with ensure_servers(ws) as urls:
        res = deploy_canary(ws, tenant, version, weight=weight, server_url=urls)
    emit(res, as_json)


@app.command()
def promote(
    version: str = typer.Option(None, help="Version to promote (default: the canary)."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Move the `production` alias to the canary (or the given approved version)."""
    from ct_llm.deploy.rollout import promote as promote_version
    from ct_llm.deploy.vllm_server import ensure_servers

    ws, tenant = open_workspace(workspace, tenant)
    with ensure_servers(ws) as urls:
        res = promote_version(ws, tenant, version_id=version, server_url=urls)
    emit(res, as_json)


@app.command()
def rollback(
    workspace: Path = WorkspaceOpt, tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Drop the canary, or move production back to the previous version."""
    from ct_llm.deploy.rollout import rollback as rollback_version
    from ct_llm.deploy.vllm_server import ensure_servers

    ws, tenant = open_workspace(workspace, tenant)
    with ensure_servers(ws) as urls:
        res = rollback_version(ws, tenant, server_url=urls)
    emit(res, as_json)


@app.command()
def canary(
    apply: bool = typer.Option(
        False, "--apply", help="Carry out a promote or rollback (default: only report)."
    ),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Compare the canary's live feedback with production's: promote, roll back or wait."""
    from ct_llm.deploy.canary_watch import check_canary

    ws, tenant = open_workspace(workspace, tenant)
    if apply:
        from ct_llm.deploy.vllm_server import ensure_servers

        with ensure_servers(ws) as urls:
            res = check_canary(ws, tenant, apply=True, server_url=urls)
    else:
        res = check_canary(ws, tenant, apply=False)
    emit(res, as_json, _canary_text(res))


def _canary_text(res: dict) -> str:
    action = res["action"].upper()
    if res["applied"] is None and res["action"] != "wait":
        action += " (not applied; run with --apply)"
    lines = [f"canary {res['canary']} vs {res['production']}: {action}"]
    lines += [f"  {reason}" for reason in res["reasons"]]
    return "\n".join(lines)


@app.command()
def lineage(
    version: str = typer.Argument(..., help="Model version."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Explain a version: its data, training, evals, decisions, and how to undo it."""
    from ct_llm.registry.lineage import explain_version

    ws, tenant = open_workspace(workspace, tenant)
    res = explain_version(ws, tenant, version)
    emit(res, as_json, _chain_text(res))


def _chain_text(res: dict) -> str:
    """The chain as lines a person reads: one link per line, then how to undo."""
    lines = [f"{res['version']} ({res['state']})"]
    for link in res["chain"]:
        kind = link["link"]
        if kind == "events":
            seqs = f"{link.get('first_seq')}..{link.get('last_seq')}"
            detail = f"{link.get('count')} feedback events (seq {seqs})"
        elif kind == "dataset":
            detail = f"dataset {link['version']}"
        elif kind == "adapter":
            detail = f"adapter {link['version']} (parent {link.get('parent') or 'base model'})"
        elif kind == "report":
            detail = f"eval report {link['id']} vs {link['baseline']}: {link['path']}"
        elif kind == "decision":
            failed = ", ".join(link["failed_rules"]) or "none failed"
            detail = f"gate {link['outcome']} by {link['actor']} at {link['at']} ({failed})"
        else:
            detail = f"{link['action']} -> {link['outcome']} by {link['actor']} at {link['at']}"
        lines.append(f"  {kind:<10} {detail}")
    lines.append(f"undo: {res['undo']}" if res["undo"] else "undo: not serving; nothing to undo")
    return "\n".join(lines)


@app.command()
def export(
    tracking_uri: str = typer.Option(
        ..., envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (e.g. sqlite:///mlflow.db)."
    ),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Export the registry to MLflow: a run and a model version per adapter, aliases mirrored."""
    from ct_llm.registry.mlflow_export import export_to_mlflow

    ws, tenant = open_workspace(workspace, tenant)
    res = export_to_mlflow(ws, tenant, tracking_uri)
    emit(
        res,
        as_json,
        f"{len(res['versions'])} version(s) of {res['registered_model']} exported to "
        f"{tracking_uri}; aliases {res['aliases']}",
    )


@app.command()
def status(
    workspace: Path = WorkspaceOpt, tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Production and canary versions, the registry, feedback counts, the last cycle."""
    from ct_llm.monitor.status import workspace_status

    ws, tenant = open_workspace(workspace, tenant)
    res = workspace_status(ws, tenant)
    canary = res["canary"]["version"] if res["canary"] else "none"
    emit(
        res,
        as_json,
        f"tenant {tenant}: production={res['production'] or res['base_model'] + ' (base)'} "
        f"canary={canary} feedback={res['feedback']['total']} "
        f"versions={len(res['versions'])}",
    )
