"""`ct-llm <verb>`: parses arguments, calls one library function, prints the result.

No logic lives only here. Importing this module must stay cheap (no torch): heavy modules are
imported inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ct_llm import __version__
from ct_llm.errors import CtLlmError

app = typer.Typer(
    name="ct-llm",
    help="Continuous fine-tuning for LLM chatbots: feedback -> curated data -> LoRA/DPO -> "
    "eval gate -> vLLM canary -> promote or roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Base models.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (per tenant, with a role).", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)

WorkspaceOpt = typer.Option(
    Path("ct-llm-workspace"),
    "--workspace",
    "-w",
    envvar="CT_LLM_WORKSPACE",
    help="Workspace folder (config, database, artifacts).",
)
TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: the workspace's).")
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON.")


def _open(workspace: Path, tenant: str | None = None):  # type: ignore[no-untyped-def]
    from ct_llm.workspace import Workspace

    ws = Workspace.open(workspace)
    return ws, tenant or ws.config.tenant


def _progress(message: str) -> None:
    """Progress lines on stderr, printed as they are: no markup, no wrapping of long paths."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def _emit(result: Any, as_json: bool, human: str | None = None) -> None:
    # JSON goes to stdout unwrapped so scripts can parse it; the human text may be styled.
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        out.print(human if human is not None else json.dumps(result, indent=2, default=str))


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"ct-llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    pass


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
    ws, _ = _open(workspace)
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
    upstream: str = typer.Option(
        None, help="Use this running vLLM server instead of starting one."
    ),
) -> None:
    """Run the gateway + feedback API; starts and stops the vLLM server unless --upstream."""
    from contextlib import nullcontext

    from ct_llm.deploy.rollout import reconcile_serving
    from ct_llm.deploy.vllm_server import ensure_server
    from ct_llm.gateway.server import run_api

    ws, _ = _open(workspace)
    with nullcontext(upstream) if upstream else ensure_server(ws) as url:
        loaded = reconcile_serving(ws, server_url=url)
        if loaded:
            err.print(f"loaded adapters into vLLM: {', '.join(loaded)}")
        run_api(ws, url, host or ws.config.api.host, port or ws.config.api.port)


@app.command()
def curate(
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the statistics, write nothing."),
) -> None:
    """Turn feedback into a new immutable dataset version (DPO pairs, KTO examples, held-out)."""
    from ct_llm.curate.dataset import curate_dataset

    ws, tenant = _open(workspace, tenant)
    res = curate_dataset(ws, tenant, dry_run=dry_run).to_dict()
    counts = ", ".join(f"{k}={v}" for k, v in res["counts"].items())
    what = "would write" if dry_run else f"wrote {res['version']}:"
    _emit(res, as_json, f"{what} {counts}; drops: {res['drops'] or 'none'}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    recipe: str = typer.Option(None, help="Recipe YAML (default: the workspace's recipe)."),
    dataset: str = typer.Option(None, help="Dataset version (default: the latest)."),
) -> None:
    """Train a candidate adapter. Extra `key=value` arguments override the recipe."""
    from ct_llm.train.candidate import train_candidate

    overrides = list(ctx.args)
    for o in overrides:
        if "=" not in o or o.startswith("-"):
            raise CtLlmError(f"unexpected argument '{o}'; recipe overrides are key=value")
    ws, tenant = _open(workspace, tenant)
    on_log = None if as_json else (lambda logs: err.print(_fmt_log(logs)))
    res = train_candidate(
        ws, tenant, recipe_path=recipe, overrides=overrides, dataset_version=dataset, on_log=on_log
    )
    _emit(
        res,
        as_json,
        f"trained candidate {res['version']} on {res['dataset_version']} -> {res['path']}",
    )


def _fmt_log(logs: dict[str, Any]) -> str:
    keys = ("step", "loss", "rewards/accuracies", "rewards/margins", "learning_rate")
    return "  " + "  ".join(
        f"{k}={logs[k]:.4g}" if isinstance(logs.get(k), float) else f"{k}={logs[k]}"
        for k in keys
        if k in logs
    )


@app.command("eval")
def eval_(
    candidate: str = typer.Option(..., help="Candidate version to evaluate."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    suite: list[str] = typer.Option(None, help="Suites (default: config eval.suites)."),
) -> None:
    """Evaluate a candidate against production on the live vLLM server; write a report."""
    from ct_llm.deploy.vllm_server import ensure_server
    from ct_llm.evals.candidate import evaluate_candidate

    ws, tenant = _open(workspace, tenant)
    with ensure_server(ws) as url:
        res = evaluate_candidate(ws, tenant, candidate, server_url=url, suites=suite or None)
    lines = [
        f"{name}: candidate {s['candidate_pass_rate']:.2f} vs baseline "
        f"{s['baseline_pass_rate']:.2f} ({s['kind']}, n={s['n']})"
        for name, s in res["summary"]["suites"].items()
    ]
    verdict = "approve" if res["gate_preview"]["approved"] else "reject"
    _emit(res, as_json, "\n".join(lines + [f"gate would {verdict}; report: {res['path']}"]))


@app.command()
def gate(
    candidate: str = typer.Option(..., help="Candidate version."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Apply the promotion policy to the candidate's latest eval report and record the decision."""
    from ct_llm.gate.record import gate_candidate

    ws, tenant = _open(workspace, tenant)
    res = gate_candidate(ws, tenant, candidate)
    reasons = "\n".join(
        f"  {'ok  ' if r['passed'] else 'FAIL'} {r['detail']}" for r in res["reasons"]
    )
    _emit(res, as_json, f"{candidate}: {res['decision']}\n{reasons}")


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
    from ct_llm.deploy.vllm_server import ensure_server

    ws, tenant = _open(workspace, tenant)
    with ensure_server(ws) as url:
        res = deploy_canary(ws, tenant, version, weight=weight, server_url=url)
    _emit(res, as_json)


@app.command()
def promote(
    version: str = typer.Option(None, help="Version to promote (default: the canary)."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Move the `production` alias to the canary (or the given approved version)."""
    from ct_llm.deploy.rollout import promote as promote_version
    from ct_llm.deploy.vllm_server import ensure_server

    ws, tenant = _open(workspace, tenant)
    with ensure_server(ws) as url:
        res = promote_version(ws, tenant, version_id=version, server_url=url)
    _emit(res, as_json)


@app.command()
def rollback(
    workspace: Path = WorkspaceOpt, tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Drop the canary, or move production back to the previous version."""
    from ct_llm.deploy.rollout import rollback as rollback_version
    from ct_llm.deploy.vllm_server import ensure_server

    ws, tenant = _open(workspace, tenant)
    with ensure_server(ws) as url:
        res = rollback_version(ws, tenant, server_url=url)
    _emit(res, as_json)


@app.command()
def lineage(
    version: str = typer.Argument(..., help="Model version."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Explain a version: its data, training, evals, decisions, and how to undo it."""
    from ct_llm.registry.lineage import explain_version

    ws, tenant = _open(workspace, tenant)
    res = explain_version(ws, tenant, version)
    _emit(res, as_json)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cycle(
    ctx: typer.Context,
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    force: bool = typer.Option(False, "--force", help="Train even if no trigger fired."),
) -> None:
    """One pass: triggers -> curate -> train -> eval -> gate -> canary. Extra key=value
    arguments override the recipe."""
    from ct_llm.loop.cycle import run_cycle

    ws, tenant = _open(workspace, tenant)
    res = run_cycle(
        ws,
        tenant,
        force=force,
        recipe_overrides=list(ctx.args),
        progress=lambda m: err.print(f"[cycle] {m}"),
        on_train_log=None if as_json else (lambda logs: err.print(_fmt_log(logs))),
    )
    _emit(
        res,
        as_json,
        f"trained={res['trained']} outcome={res.get('outcome', 'skipped')} reason: {res['reason']}",
    )


@app.command()
def schedule(
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    interval: float = typer.Option(3600.0, help="Seconds between trigger checks."),
    once: bool = typer.Option(False, "--once", help="Check once and exit."),
) -> None:
    """Run cycles forever (triggers respected); stops cleanly on Ctrl-C / SIGTERM."""
    from ct_llm.loop.schedule import run_schedule

    ws, tenant = _open(workspace, tenant)
    run_schedule(ws, tenant, interval_s=interval, once=once, log=_progress)


@app.command()
def status(
    workspace: Path = WorkspaceOpt, tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Production and canary versions, the registry, feedback counts, the last cycle."""
    from ct_llm.monitor.status import workspace_status

    ws, tenant = _open(workspace, tenant)
    res = workspace_status(ws, tenant)
    canary = res["canary"]["version"] if res["canary"] else "none"
    _emit(
        res,
        as_json,
        f"tenant {tenant}: production={res['production'] or res['base_model'] + ' (base)'} "
        f"canary={canary} feedback={res['feedback']['total']} "
        f"versions={len(res['versions'])}",
    )


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key belongs to."),
    role: str = typer.Option("ingest", help="ingest | admin"),
    workspace: Path = WorkspaceOpt,
) -> None:
    """Create an API key; it is printed once, only its hash is stored."""
    from ct_llm.gateway.auth import ROLES, create_api_key

    if role not in ROLES:
        raise CtLlmError(f"unknown role '{role}'; use one of: {', '.join(ROLES)}")
    ws, _ = _open(workspace)
    out.print(create_api_key(ws.database_url, tenant, role))


@keys_app.command("revoke")
def keys_revoke(
    prefix: str = typer.Argument(..., help="Key prefix."), workspace: Path = WorkspaceOpt
) -> None:
    """Revoke an API key by its prefix."""
    from ct_llm.gateway.auth import revoke_api_key

    ws, _ = _open(workspace)
    revoke_api_key(ws.database_url, prefix)
    out.print(f"revoked {prefix}")


@app.command()
def demo(
    workspace: Path = typer.Option(
        Path("demo-workspace"), "--workspace", "-w", help="Workspace for the demo."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the demo workspace first."),
    as_json: bool = JsonOpt,
) -> None:
    """The whole loop once on a built-in scenario (a shop bot learns a new return policy)."""
    from ct_llm.demo.run import run_demo

    res = run_demo(workspace, fresh=fresh, log=_progress)
    if as_json:
        sys.stdout.write(json.dumps(res, default=str) + "\n")  # one line, last on stdout


@app.command()
def bench(what: str = typer.Argument(..., help="ingest | curate | train | eval | swap")) -> None:
    """Benchmarks that run the baseline and ct-llm side by side and print ratios."""
    from ct_llm.bench import run_bench

    run_bench(what, log=_progress)


def main() -> None:
    # Standalone mode lets typer report usage errors (missing option, bad type) itself; the
    # errors a user can cause further in become one line on stderr and a non-zero exit.
    try:
        app()
    except CtLlmError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except OSError as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
