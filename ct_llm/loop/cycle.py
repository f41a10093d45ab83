"""`ct-llm cycle`: one pass of the loop — triggers -> curate -> train -> eval -> gate -> canary.

One cycle per tenant at a time (a `cycle` job lock; a second one stops at once with BusyError).
Every check is recorded in the lineage log (action `cycle`) with the trigger decisions and their
inputs, whether it ran or declined and why. Every stage writes its artifact atomically and
records itself, so a failed stage leaves no partial artifact and never moves production (only
a canary is ever deployed here; promotion is the canary analysis' call). A failure is recorded
as `failed:<stage>` and retried by a later run after a backoff (loop/decision.py), starting
from what the failed cycle left: the dataset it curated, the candidate it trained.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from ct_llm.config import TrainConfig
from ct_llm.errors import BusyError, CtLlmError
from ct_llm.loop import signals
from ct_llm.loop.check import Facts, evaluate_triggers, read_facts
from ct_llm.loop.decision import RetryState, decide_cycle, retry_state
from ct_llm.loop.locks import job_lock
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import utcnow
from ct_llm.workspace import Workspace

Progress = Callable[[str], None]


class CycleFailed(CtLlmError):
    """A stage of the cycle failed; it was recorded and a later run retries it."""

    exit_code = 1

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def run_cycle(
    ws: Workspace,
    tenant: str,
    *,
    force: bool = False,
    recipe_overrides: list[str] | None = None,
    server_url: str | None = None,
    progress: Progress = lambda _msg: None,
    on_train_log: Callable[[dict[str, Any]], None] | None = None,
    now: datetime | None = None,
    nproc: int | None = None,
    accelerate_config: str | None = None,
) -> dict[str, Any]:
    """Check the triggers and, if the decision is to run, curate, train, evaluate, gate and
    deploy a canary. Returns the recorded result (`trained`, `outcome`, `reason`, `triggers`);
    raises CycleFailed (recorded, retried later) when a stage fails and BusyError when another
    cycle of the tenant is running (nothing recorded). `nproc` and `accelerate_config` override
    the workspace's `train:` settings for this run (None: the setting)."""
    launch = ws.config.train.with_overrides(nproc, accelerate_config)  # checked before locking
    with job_lock(ws.locks_dir, "cycle", tenant):
        return _run_locked(
            ws, tenant, force, recipe_overrides, server_url, progress, on_train_log, now, launch
        )


def _run_locked(
    ws: Workspace,
    tenant: str,
    force: bool,
    recipe_overrides: list[str] | None,
    server_url: str | None,
    progress: Progress,
    on_train_log: Callable[[dict[str, Any]], None] | None,
    now: datetime | None,
    launch: TrainConfig,
) -> dict[str, Any]:
    started = time.monotonic()
    now = now or utcnow()
    config = ws.config.triggers
    facts = read_facts(ws, tenant, now)
    triggers = evaluate_triggers(config, facts, now)
    retry = retry_state(
        [r for r, _ in facts.records],
        base_s=config.retry_backoff_s,
        max_s=config.retry_backoff_max_s,
    )
    from ct_llm.train.candidate import interrupted_training

    interrupted = interrupted_training(ws, tenant)
    pending = _pending_work(interrupted, facts)
    decision = decide_cycle(
        triggers,
        retry,
        now=now,
        force=force,
        canary=facts.canary,
        new_usable_events=facts.new_usable_events,
        pending_work=pending,
    )
    result: dict[str, Any] = {
        "tenant": tenant,
        "checked_at": now.isoformat(),
        "forced": force,
        "triggers": {t.name: t.to_dict() for t in triggers},
        "retry": retry.to_dict(),
        "trained": False,
        "reason": decision.reason,
    }
    if not decision.run:
        result.update(outcome="skipped", skip=decision.skip)
        _record(ws, tenant, None, "skipped", result, started)
        return result
    if decision.retry:
        result["retrying"] = True
    progress(f"running: {decision.reason}")
    try:
        _stages(
            ws,
            tenant,
            result,
            facts,
            interrupted,
            recipe_overrides,
            server_url,
            progress,
            on_train_log,
            launch,
        )
    except BusyError as e:
        # Someone else is training this tenant (`ct-llm train` by hand): not a fault of the
        # cycle, so no failure and no backoff; whatever was curated waits for the next run.
        result.pop("stage", None)
        result.update(outcome="skipped", skip="busy", reason=f"{result['reason']}; {e}")
        _record(ws, tenant, result.get("candidate"), "skipped", result, started)
        raise
    except BaseException as e:
        stage = result.pop("stage", "curate")
        error: dict[str, Any] = {"stage": stage, "message": str(e) or type(e).__name__}
        if not isinstance(e, CtLlmError):
            # Not an error a user caused: keep where it happened (the innermost frames) for
            # whoever investigates; the CLI prints one line.
            error["type"] = type(e).__name__
            error["traceback"] = traceback.format_exc(limit=-8)[-4000:]
        result.update(outcome=f"failed:{stage}", error=error)
        _record(ws, tenant, result.get("candidate"), result["outcome"], result, started)
        if not isinstance(e, Exception):
            raise  # Ctrl-C, SystemExit: recorded, then let it end the process
        retry_hint = _next_retry(ws, tenant, now)
        raise CycleFailed(
            f"the cycle failed at {stage}: {error['message']} (recorded; {retry_hint})", result
        ) from e
    result.pop("stage", None)
    result["outcome"] = "deployed" if "deploy" in result else "rejected"
    _record(ws, tenant, result.get("candidate"), result["outcome"], result, started)
    return result


def _pending_work(interrupted: str | None, facts: Facts) -> str | None:
    """What a failed or interrupted cycle left to redo first, in words (None: nothing)."""
    if interrupted is not None:
        return f"resume the interrupted training of {interrupted}"
    if facts.failed_candidate is not None:
        return f"evaluate {facts.failed_candidate}, trained by the failed cycle"
    if facts.untrained_dataset is not None:
        return f"train on {facts.untrained_dataset}, curated but never trained on"
    return None


def _stages(
    ws: Workspace,
    tenant: str,
    result: dict[str, Any],
    facts: Facts,
    interrupted: str | None,
    recipe_overrides: list[str] | None,
    server_url: str | None,
    progress: Progress,
    on_train_log: Callable[[dict[str, Any]], None] | None,
    launch: TrainConfig,
) -> None:
    """curate -> train -> eval -> gate -> deploy, starting where pending work says. Updates
    `result` as it goes (`result['stage']` is the stage running, for the failure record)."""
    from ct_llm.train.candidate import train_candidate

    # A resumed training restarts with the same launcher settings as a new one.
    how = {"nproc": launch.nproc, "accelerate_config": launch.accelerate_config}

    version = facts.failed_candidate
    if interrupted is not None:
        # A training this tenant started and lost (a crash, a preempted node): its data was
        # curated and never trained on, so it goes first; new feedback waits a cycle.
        result["stage"] = "train"
        progress(f"resuming the interrupted training of {interrupted}")
        result["resumed_training"] = interrupted
        trained = train_candidate(ws, tenant, resume=True, on_log=on_train_log, **how)
        result["dataset"] = {"version": trained["dataset_version"]}
        version = trained["version"]
        result.update(trained=True, candidate=version, train=trained["metrics"])
    elif version is not None:
        progress(f"evaluating {version}, which the failed cycle trained")
        result.update(candidate=version, resumed_candidate=version)
    else:
        dataset = facts.untrained_dataset
        if dataset is None:
            result["stage"] = "curate"
            progress("curating feedback into a dataset version")
            from ct_llm.curate.dataset import curate_dataset

            ds = curate_dataset(ws, tenant)
            result["dataset"] = ds.to_dict()
            dataset = ds.version
        else:
            progress(f"{dataset} was curated and never trained on: training on it first")
            result["dataset"] = {"version": dataset, "reused": True}
        result["stage"] = "train"
        progress(f"training a candidate on {dataset}")
        trained = train_candidate(
            ws,
            tenant,
            overrides=recipe_overrides,
            dataset_version=dataset,
            on_log=on_train_log,
            restart=True,  # a job without a complete checkpoint has nothing to keep
            **how,
        )
        version = trained["version"]
        result.update(trained=True, candidate=version, train=trained["metrics"])

    result["stage"] = "eval"
    from ct_llm.deploy.vllm_server import ensure_servers
    from ct_llm.evals.candidate import evaluate_candidate
    from ct_llm.gate.record import gate_candidate

    given = None if server_url is None else [server_url]
    with ensure_servers(ws) if given is None else nullcontext(given) as urls:
        progress(f"evaluating {version} against production on vLLM")
        ev = evaluate_candidate(ws, tenant, version, server_url=urls[0])
        result["eval"] = {"report": ev["report"], "path": ev["path"], "summary": ev["summary"]}

        result["stage"] = "gate"
        decision = gate_candidate(ws, tenant, version, actor="cycle")
        result["gate"] = decision
        progress(f"gate: {decision['decision']}")

        if decision["decision"] == "approved":
            result["stage"] = "deploy"
            from ct_llm.deploy.rollout import deploy_canary

            progress(f"deploying {version} as canary")
            result["deploy"] = deploy_canary(ws, tenant, version, actor="cycle", server_url=urls)


def _next_retry(ws: Workspace, tenant: str, now: datetime) -> str:
    """When the next run will retry, from the records just written."""
    config = ws.config.triggers
    with session_scope(ws.database_url) as s:
        records = [r for r, _ in signals.cycle_records(s, tenant)]
    state: RetryState = retry_state(
        records, base_s=config.retry_backoff_s, max_s=config.retry_backoff_max_s
    )
    if state.retry_at is None:
        return "a later run retries it"
    return (
        f"{state.consecutive_failures} failure(s) in a row; the next run after "
        f"{state.retry_at.isoformat(timespec='seconds')} retries it"
    )


def _record(
    ws: Workspace,
    tenant: str,
    version: str | None,
    outcome: str,
    result: dict[str, Any],
    started: float,
) -> None:
    keys = ("triggers", "reason", "forced", "trained", "skip", "retry", "retrying", "error")
    details = {k: result[k] for k in keys if k in result}
    details["duration_s"] = round(time.monotonic() - started, 1)
    if "dataset" in result:
        details["dataset"] = result["dataset"].get("version")
    with session_scope(ws.database_url) as session:
        registry.record(session, tenant, version, "cycle", outcome, "cycle", details)
