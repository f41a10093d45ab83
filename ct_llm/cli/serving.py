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
    """Compare the canary's live feedback with production's: promote, roll back or wait.

    Safe to run from cron: no canary is "nothing to do" (exit 0), and a "wait" verdict is
    printed, not recorded (only verdicts that act are lineage events)."""
    from ct_llm.deploy.canary_watch import check_canary, tenants_with_canary

    ws, tenant = open_workspace(workspace, tenant)
    if tenant not in tenants_with_canary(ws):
        res = {"tenant": tenant, "canary": None, "action": "none", "applied": None}
        res["reasons"] = ["no canary deployed; `ct-llm deploy --version V` starts one"]
        emit(res, as_json, f"tenant {tenant}: no canary deployed")
        return
    # With --apply a promote or rollback acts on the replicas already serving the canary
    # (serving.url/urls or the managed ports); none is started for it.
    res = check_canary(ws, tenant, apply=apply, record_wait=False)
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
    html: Path = typer.Option(
        None,
        "--html",
        help="Also write the status page (quality over time, registry timeline, eval verdicts; "
        "one self-contained HTML file) here.",
    ),
    days: int = typer.Option(30, "--days", min=1, max=365, help="UTC days the page charts."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Production and canary, the last cycle and its trigger values, recent quality per
    version, feedback counts, the last version change and eval."""
    from ct_llm.monitor.status import workspace_status

    ws, tenant = open_workspace(workspace, tenant)
    res = workspace_status(ws, tenant)
    if html is not None:
        from ct_llm.monitor.page_data import write_status_page

        res["page"] = str(write_status_page(ws, tenant, html, days=days))
    emit(res, as_json, _status_text(res))


def _status_text(res: dict) -> str:
    """The status as lines a person reads at a glance."""
    from datetime import datetime, timezone

    from rich.markup import escape as markup_escape

    def when(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def quality(version: str | None) -> str:
        q = res["recent_quality"]["by_model_version"].get(version or res["base_model"])
        hours = f"last {res['recent_quality']['hours']:g} h"
        if not q:
            return f"{hours}: no votes"
        rate = "n/a" if q["thumbs_down_rate"] is None else f"{q['thumbs_down_rate']:.1%}"
        mean = "n/a" if q["mean_rating"] is None else f"{q['mean_rating']:.2f}"
        return f"{hours}: thumbs-down {rate} of {q['thumbs']}, mean rating {mean} of {q['ratings']}"

    def cycle_line(c: dict) -> str:
        took = c.get("duration_s")
        took_text = "" if took is None else f" ({took:.1f} s)" if took < 10 else f" ({took:.0f} s)"
        why = (c.get("error") or {}).get("message") or c.get("reason") or ""
        return f"{c['outcome']} at {when(c['at'])}{took_text}: {why}"

    pad = " " * 15
    prod = res["production"]
    lines = [
        f"tenant {res['tenant']}",
        f"  production   {prod or res['base_model'] + ' (base model)'}",
        pad + quality(prod),
    ]
    canary = res["canary"]
    if canary:
        check = canary["last_check"]
        lines += [
            f"  canary       {canary['version']} at {canary['weight']:.0%} since "
            f"{when(canary['since'])}",
            pad
            + (f"last check: {check['action']} at {when(check['at'])}" if check else "not checked"),
            pad + quality(canary["version"]),
        ]
    else:
        lines.append("  canary       none")
    cycle, ran = res["last_cycle"], res["last_cycle_that_ran"]
    lines.append(f"  last cycle   {cycle_line(cycle) if cycle else 'none yet'}")
    if ran and cycle and ran["at"] != cycle["at"]:
        lines.append(f"  last run     {cycle_line(ran)}")
    for name, t in res["triggers"].items():
        fired = "fired" if t.get("fired") else "not fired"
        lines.append(f"  trigger      {name} {t.get('value')} / {t.get('threshold')}, {fired}")
    change = res["last_version_change"]
    if change:
        lines.append(
            f"  last change  {change['action']} {change['version']} at {when(change['at'])} "
            f"by {change['actor']}"
        )
    ev = res["last_eval"]
    if ev:
        lines.append(f"  last eval    {ev['report']}: {ev['verdict'] or 'not gated'}")
    fb = res["feedback"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(fb["by_kind"].items())) or "none"
    lines.append(f"  feedback     {fb['total']} events ({kinds})")
    if res.get("page"):
        lines.append(f"  page         {res['page']}")
    # Version names and reasons are data, not rich markup.
    return markup_escape("\n".join(lines))
