"""`ct-llm cycle`: one pass of the loop — triggers -> curate -> train -> eval -> gate -> canary.

Every stage writes its artifact atomically and records itself, so a failed stage leaves no
partial artifact and never moves production; the failure is recorded as the cycle's outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from sqlalchemy import func, select

from ct_llm.curate.dataset import curate_dataset, latest_dataset
from ct_llm.errors import CtLlmError
from ct_llm.loop.triggers import any_fired, volume_trigger
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace

USABLE_KINDS = ("edit", "thumbs")
Progress = Callable[[str], None]


def new_usable_events(ws: Workspace, tenant: str) -> int:
    with session_scope(ws.database_url) as session:
        last = latest_dataset(session, tenant)
        since = last.max_event_seq if last else 0
        return (
            session.scalar(
                select(func.count())
                .select_from(FeedbackEvent)
                .where(
                    FeedbackEvent.tenant == tenant,
                    FeedbackEvent.seq > since,
                    FeedbackEvent.kind.in_(USABLE_KINDS),
                )
            )
            or 0
        )


def run_cycle(
    ws: Workspace,
    tenant: str,
    *,
    force: bool = False,
    recipe_overrides: list[str] | None = None,
    server_url: str | None = None,
    progress: Progress = lambda _msg: None,
    on_train_log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    triggers = [volume_trigger(new_usable_events(ws, tenant), ws.config.triggers.min_new_examples)]
    result: dict[str, Any] = {
        "tenant": tenant,
        "forced": force,
        "triggers": {t.name: t.to_dict() for t in triggers},
        "trained": False,
    }
    if not force and not any_fired(triggers):
        result["reason"] = "no trigger fired: " + "; ".join(t.reason for t in triggers)
        _record(ws, tenant, None, "skipped", result)
        return result
    result["reason"] = "forced" if force else "; ".join(t.reason for t in triggers if t.fired)
    stage = "curate"
    try:
        from ct_llm.train.candidate import interrupted_training, train_candidate

        interrupted = interrupted_training(ws, tenant)
        if interrupted is not None:
            # A training this tenant started and lost (a crash, a preempted node): its data was
            # curated and never trained on, so it goes first; new feedback waits a cycle.
            stage = "train"
            progress(f"resuming the interrupted training of {interrupted}")
            result["resumed_training"] = interrupted
            trained = train_candidate(ws, tenant, resume=True, on_log=on_train_log)
            result["dataset"] = {"version": trained["dataset_version"]}
        else:
            progress("curating feedback into a dataset version")
            ds = curate_dataset(ws, tenant)
            result["dataset"] = ds.to_dict()

            stage = "train"
            progress(f"training a candidate on {ds.version}")
            trained = train_candidate(
                ws,
                tenant,
                overrides=recipe_overrides,
                dataset_version=ds.version,
                on_log=on_train_log,
                restart=True,  # a job without a complete checkpoint has nothing to keep
            )
        version = trained["version"]
        result.update(trained=True, candidate=version, train=trained["metrics"])

        stage = "eval"
        from ct_llm.deploy.vllm_server import ensure_servers
        from ct_llm.evals.candidate import evaluate_candidate
        from ct_llm.gate.record import gate_candidate

        given = None if server_url is None else [server_url]
        with ensure_servers(ws) if given is None else nullcontext(given) as urls:
            progress(f"evaluating {version} against production on vLLM")
            ev = evaluate_candidate(ws, tenant, version, server_url=urls[0])
            result["eval"] = {"report": ev["report"], "path": ev["path"], "summary": ev["summary"]}

            stage = "gate"
            decision = gate_candidate(ws, tenant, version, actor="cycle")
            result["gate"] = decision
            progress(f"gate: {decision['decision']}")

            if decision["decision"] == "approved":
                stage = "deploy"
                from ct_llm.deploy.rollout import deploy_canary

                progress(f"deploying {version} as canary")
                result["deploy"] = deploy_canary(
                    ws, tenant, version, actor="cycle", server_url=urls
                )
        outcome = "deployed" if "deploy" in result else "rejected"
    except CtLlmError as e:
        result["error"] = {"stage": stage, "message": str(e)}
        outcome = f"failed:{stage}"
        _record(ws, tenant, result.get("candidate"), outcome, result, started)
        raise
    _record(ws, tenant, result.get("candidate"), outcome, result, started)
    result["outcome"] = outcome
    return result


def _record(
    ws: Workspace,
    tenant: str,
    version: str | None,
    outcome: str,
    result: dict[str, Any],
    started: float | None = None,
) -> None:
    details = {k: result[k] for k in ("triggers", "reason", "forced", "error") if k in result}
    if started is not None:
        details["duration_s"] = round(time.monotonic() - started, 1)
    with session_scope(ws.database_url) as session:
        registry.record(session, tenant, version, "cycle", outcome, "cycle", details)
