"""The loop's stages: curate, train, eval, gate, and the cycle / schedule that chain them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ct_llm.cli.common import (
    JsonOpt,
    TenantOpt,
    WorkspaceOpt,
    app,
    emit,
    open_workspace,
    progress,
)
from ct_llm.errors import CtLlmError

# `ct-llm train` and `ct-llm cycle`: how training is launched; unset, the `train:` settings.
NprocOpt = typer.Option(
    None,
    "--nproc",
    min=1,
    help="Data-parallel training processes (torchrun; gloo on CPU, NCCL on GPUs); "
    "default: train.nproc (1).",
)
AccelerateConfigOpt = typer.Option(
    None,
    "--accelerate-config",
    help="accelerate config file (FSDP / DeepSpeed, see recipes/accelerate/); launches with "
    "`accelerate launch` instead of torchrun. Default: train.accelerate_config.",
)


@app.command()
def curate(
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Run everything and print the statistics; write nothing."
    ),
    import_path: Path = typer.Option(
        None,
        "--import",
        help="Golden examples (JSONL, one DPO/KTO/SFT row per line) to validate, scrub, keep for "
        "every later version, and mix into this one.",
    ),
) -> None:
    """Turn new feedback into an immutable dataset version: pairing rules, PII scrubbing,
    validation, dedup, per-user cap and quarantine, replay, split by conversation, Parquet."""
    from ct_llm.curate.dataset import curate_dataset

    ws, tenant = open_workspace(workspace, tenant)
    on_progress = None if as_json else (lambda n: progress(f"  {n:,} events read"))
    res = curate_dataset(
        ws, tenant, dry_run=dry_run, import_path=import_path, on_progress=on_progress
    ).to_dict()
    counts = "  ".join(
        f"{kind} {c.get('train', 0)}+{c.get('test', 0)}" for kind, c in res["counts"].items()
    )
    what = "would write" if dry_run else f"wrote {res['version']}:"
    lines = [f"{what} {counts} (train+held-out rows)"]
    lines.append(f"  drops: {res['drops'] or 'none'}")
    if res["pii_scrubbed"]:
        lines.append(f"  PII replaced: {res['pii_scrubbed']}")
    for q in res["quarantined"]:
        lines.append(f"  quarantined {q['user']} ({q['events']} events): {q['reason']}")
    emit(res, as_json, "\n".join(lines))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    recipe: str = typer.Option(None, help="Recipe YAML (default: the workspace's recipe)."),
    dataset: str = typer.Option(None, help="Dataset version (default: the latest)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the interrupted training from its last checkpoint."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard an interrupted training's checkpoints and start anew."
    ),
    nproc: int = NprocOpt,
    accelerate_config: str = AccelerateConfigOpt,
    launcher_arg: list[str] = typer.Option(
        None,
        "--launcher-arg",
        help="Passed to the launcher as is, e.g. --launcher-arg=--nnodes=2 (repeatable).",
    ),
) -> None:
    """Train a candidate adapter. Extra `key=value` arguments override the recipe."""
    from ct_llm.train.candidate import train_candidate

    overrides = list(ctx.args)
    for o in overrides:
        if "=" not in o or o.startswith("-"):
            raise CtLlmError(f"unexpected argument '{o}'; recipe overrides are key=value")
    ws, tenant = open_workspace(workspace, tenant)
    on_log = None if as_json else (lambda logs: progress(_fmt_log(logs)))
    if resume and (overrides or recipe or dataset or restart):
        raise CtLlmError("--resume continues the interrupted job as it was: no recipe changes")
    launch = ws.config.train.with_overrides(nproc, accelerate_config)
    res = train_candidate(
        ws,
        tenant,
        recipe_path=recipe,
        overrides=overrides,
        dataset_version=dataset,
        on_log=on_log,
        resume=resume,
        restart=restart,
        nproc=launch.nproc,
        accelerate_config=launch.accelerate_config,
        launcher_args=list(launcher_arg or []),
    )
    emit(
        res,
        as_json,
        f"trained candidate {res['version']} on {res['dataset_version']} -> {res['path']}",
    )


def _fmt_log(logs: dict[str, Any]) -> str:
    if "event" in logs:
        return f"  {logs['event']}"
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
    repeat: int = typer.Option(
        1,
        min=1,
        max=20,
        help="Evaluate this many times and compare the gate's verdicts (is the decision "
        "reproducible?); one report per run.",
    ),
) -> None:
    """Evaluate a candidate against production on the live vLLM server; write a report."""
    from ct_llm.deploy.vllm_server import ensure_server
    from ct_llm.evals.candidate import evaluate_candidate

    ws, tenant = open_workspace(workspace, tenant)
    runs = []
    with ensure_server(ws) as url:
        for i in range(repeat):
            if repeat > 1:
                progress(f"evaluation {i + 1} of {repeat}")
            runs.append(
                evaluate_candidate(ws, tenant, candidate, server_url=url, suites=suite or None)
            )
    if repeat > 1:
        _emit_repeats(candidate, runs, as_json)
        return
    res = runs[0]
    verdict = "approve" if res["gate_preview"]["approved"] else "reject"
    reasons = [
        f"  {'ok  ' if r['passed'] else 'FAIL'} {r['detail']}"
        for r in res["gate_preview"]["reasons"]
    ]
    human = [f"{candidate} vs {res['baseline']}: the gate would {verdict}", *reasons]
    emit(res, as_json, "\n".join([*human, f"report: {res['path']}"]))


def _emit_repeats(candidate: str, runs: list[dict[str, Any]], as_json: bool) -> None:
    from ct_llm.gate.repeat import summarize_repeats

    summary = summarize_repeats([r["gate_preview"] for r in runs])
    lines = [
        f"{candidate}: {summary.runs} evaluations, verdict {summary.majority}; "
        f"{'identical' if summary.identical else 'NOT identical'}"
    ]
    for i, (r, v, failed) in enumerate(
        zip(runs, summary.verdicts, summary.failed_rules, strict=True), 1
    ):
        lines.append(f"  run {i}: {v}{' (failed: ' + ', '.join(failed) + ')' if failed else ''}")
        lines.append(f"         report: {r['path']}")
    emit({**summary.to_dict(), "reports": [r["path"] for r in runs]}, as_json, "\n".join(lines))


@app.command()
def gate(
    candidate: str = typer.Option(..., help="Candidate version."),
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    policy: str = typer.Option(
        None,
        help="Policy file (the keys of ct-llm.yaml's gate: section); default: the workspace's.",
    ),
) -> None:
    """Apply the promotion policy to the candidate's latest eval report and record the decision."""
    from ct_llm.gate.record import gate_candidate, load_policy

    ws, tenant = open_workspace(workspace, tenant)
    rules = load_policy(policy) if policy else None
    res = gate_candidate(ws, tenant, candidate, policy=rules, policy_source=policy)
    reasons = "\n".join(
        f"  {'ok  ' if r['passed'] else 'FAIL'} {r['detail']}" for r in res["reasons"]
    )
    emit(res, as_json, f"{candidate}: {res['decision']}\n{reasons}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def cycle(
    ctx: typer.Context,
    workspace: Path = WorkspaceOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    force: bool = typer.Option(
        False, "--force", help="Train even if no trigger fired, and despite a failure backoff."
    ),
    nproc: int = NprocOpt,
    accelerate_config: str = AccelerateConfigOpt,
) -> None:
    """One pass: triggers -> curate -> train -> eval -> gate -> canary (key=value: recipe).

    Exit status:
    0 trained or declined (the reason says why);
    1 a stage failed (recorded; a later run retries it after a backoff);
    2 bad input or config; 3 another cycle of the tenant is running."""
    from ct_llm.loop.cycle import CycleFailed, run_cycle

    overrides = list(ctx.args)
    for o in overrides:
        if "=" not in o or o.startswith("-"):
            raise CtLlmError(f"unexpected argument '{o}'; recipe overrides are key=value")
    ws, tenant = open_workspace(workspace, tenant)
    try:
        res = run_cycle(
            ws,
            tenant,
            force=force,
            recipe_overrides=overrides,
            nproc=nproc,
            accelerate_config=accelerate_config,
            progress=lambda m: progress(f"[cycle] {m}"),
            on_train_log=None if as_json else (lambda logs: progress(_fmt_log(logs))),
        )
    except CycleFailed as e:
        if as_json:  # the record, for the scheduler that ran us; the error line follows
            emit(e.result, True)
        raise
    emit(
        res,
        as_json,
        f"trained={res['trained']} outcome={res['outcome']} reason: {res['reason']}",
    )


@app.command()
def schedule(
    workspace: Path = WorkspaceOpt,
    tenant: list[str] = typer.Option(
        None,
        "--tenant",
        "-t",
        help="Tenant to run cycles for (repeatable; default: schedule.tenants, else the "
        "workspace's).",
    ),
    all_tenants: bool = typer.Option(
        False,
        "--all-tenants",
        help="Every tenant with an API key or feedback, re-read at each check.",
    ),
    cron: str = typer.Option(
        None, help="When to check, as a crontab expression (default: schedule.cron)."
    ),
    interval: float = typer.Option(
        None, help="Check every this many seconds instead of on the cron schedule."
    ),
    max_parallel: int = typer.Option(
        None,
        "--max-parallel",
        min=1,
        help="Tenants cycling at once (default: schedule.max_parallel).",
    ),
    once: bool = typer.Option(False, "--once", help="Check every tenant once and exit."),
) -> None:
    """Run cycles on a schedule until stopped: each check runs `ct-llm cycle` for each tenant
    (triggers respected, one cycle per tenant at a time). SIGTERM / Ctrl-C finish the running
    cycles and exit; a second signal exits at once."""
    from ct_llm.config import check_cron
    from ct_llm.loop.schedule import Scheduler

    if cron is not None and interval is not None:
        raise CtLlmError("give --cron or --interval, not both")
    if cron is not None:
        try:
            check_cron(cron)
        except ValueError as e:
            raise CtLlmError(f"--cron {e}") from None
    ws, _ = open_workspace(workspace)
    Scheduler(
        ws,
        tenants=list(tenant or []),
        all_tenants=all_tenants,
        cron=cron,
        interval_s=interval,
        max_parallel=max_parallel,
        log=progress,
    ).run(once=once)
