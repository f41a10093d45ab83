"""Setting up: workspaces, base models, the API server, and API keys."""

from __future__ import annotations

from pathlib import Path

import typer

from ct_llm.cli.common import (
    WorkspaceOpt,
    app,
    keys_app,
    model_app,
    open_workspace,
    out,
    progress,
)
from ct_llm.errors import CtLlmError, ServingError


@app.command()
def init(
    workspace: Path = WorkspaceOpt,
    tenant: str = typer.Option(
        "default", "--tenant", "-t", help="Default tenant of this workspace."
    ),
    base_model: str = typer.Option("smollm2-135m-instruct", help="Base model name under models/."),
) -> None:
    """Create a workspace (config, database, folders). Safe to run again."""
    from ct_llm.config import WorkspaceConfig
    from ct_llm.workspace import Workspace

    ws = Workspace.init(workspace, WorkspaceConfig(tenant=tenant, base_model=base_model))
    out.print(f"workspace ready at {ws.root} (tenant '{ws.config.tenant}')")


@model_app.command("import")
def model_import(
    source: str = typer.Argument(
        "smollm2",
        help="'smollm2' (bundled, offline), a local HF checkpoint folder, or a hub id (org/name).",
    ),
    name: str = typer.Option(
        None, help="Name under models/ (default: the workspace's base_model)."
    ),
    workspace: Path = WorkspaceOpt,
    cache_only: bool = typer.Option(
        False, "--cache-only", help="Only convert the bundled model into the machine cache."
    ),
) -> None:
    """Import a base model as a safetensors checkpoint under the workspace's models/."""
    from ct_llm.train.model_import import cached_default_model, import_model

    if cache_only:
        out.print(f"base model cached at {cached_default_model()}")
        return
    ws, _ = open_workspace(workspace)
    dest = ws.models_dir / (name or ws.config.base_model)
    if (dest / "config.json").exists():
        out.print(f"{dest} is already imported")
        return
    import_model(source, dest)
    out.print(f"imported '{source}' to {dest}")


@app.command()
def api(
    workspace: Path = WorkspaceOpt,
    host: str = typer.Option(None, help="Interface (default: config api.host)."),
    port: int = typer.Option(None, help="Port (default: config api.port)."),
    upstream: list[str] = typer.Option(
        None,
        help="Use this running vLLM server instead of starting one (repeat for replicas).",
    ),
) -> None:
    """Run the gateway + feedback API; starts and stops the vLLM replicas (serving.replicas)
    unless --upstream."""
    from contextlib import nullcontext

    from ct_llm.deploy.rollout import reconcile_serving
    from ct_llm.deploy.vllm_server import ensure_servers
    from ct_llm.gateway.server import exit_on_signals, run_api

    ws, _ = open_workspace(workspace)
    started: list = []  # the replicas started here: restarted if their memory grows
    with (
        exit_on_signals(),
        nullcontext(list(upstream)) if upstream else ensure_servers(ws, started=started) as url,
    ):
        try:
            loaded = reconcile_serving(ws, server_url=url)
        except ServingError as e:
            # Feedback must keep flowing while the model server is down; chat answers 502 and
            # /healthz says `upstream: false` until it is back.
            progress(f"warning: {e}; serving feedback anyway")
            loaded = []
        if loaded:
            progress(f"loaded adapters into vLLM: {', '.join(loaded)}")
        run_api(ws, url, host or ws.config.api.host, port or ws.config.api.port, started)


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key belongs to."),
    role: str = typer.Option(
        "ingest",
        help="ingest (chats, feedback) | reviewer (trusted feedback) | admin (the tenant's "
        "rollouts and its own /metrics) | operator (/metrics of every tenant, nothing else)",
    ),
    workspace: Path = WorkspaceOpt,
) -> None:
    """Create an API key; it is printed once, only its hash is stored."""
    from ct_llm.gateway.auth import ROLES, create_api_key

    if role not in ROLES:
        raise CtLlmError(f"unknown role '{role}'; use one of: {', '.join(ROLES)}")
    ws, _ = open_workspace(workspace)
    out.print(create_api_key(ws.database_url, tenant, role))


@keys_app.command("revoke")
def keys_revoke(
    prefix: str = typer.Argument(..., help="Key prefix."), workspace: Path = WorkspaceOpt
) -> None:
    """Revoke an API key by its prefix."""
    from ct_llm.gateway.auth import revoke_api_key

    ws, _ = open_workspace(workspace)
    revoke_api_key(ws.database_url, prefix)
    out.print(f"revoked {prefix}")
