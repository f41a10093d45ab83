"""`ct-llm eval`: evaluate a candidate adapter against production on the live vLLM server and
write `reports/<id>/`. The report already shows the verdict the gate policy would give.

The candidate is loaded under a temporary, never-reused name (`eval-<version>-<nonce>`) and
unloaded afterwards: its real version name is loaded only when it is deployed, so an eval never
leaves a stale adapter behind a name that users' traffic will use (vLLM caches by name).

Where vLLM has no LoRA kernels (a CPU server ct-llm manages), the candidate's answers come from
its weights merged into the base model on a second short-lived server (evals/merged.py,
`eval.candidate_serving`); its latency is still measured as an adapter on the live server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ct_llm.deploy.dtype import serving_dtype
from ct_llm.errors import ConfigError, RegistryError
from ct_llm.evals.merged import detect_mode, serve_merged
from ct_llm.evals.reference_adapter import adapter_shape, write_reference_adapter
from ct_llm.gate.latency import latency_settled
from ct_llm.gate.types import LatencySamples
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion, EvalReport
from ct_llm.workspace import Workspace

log = logging.getLogger(__name__)


def baseline_model(ws: Workspace, tenant: str) -> str:
    """What users get today: the production adapter, or the base model when there is none."""
    with session_scope(ws.database_url) as session:
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        return prod.model_version if prod else ws.config.base_model


def _adapter(ws: Workspace, tenant: str, version_id: str) -> tuple[Path, dict[str, str] | None]:
    """The version's folder and the sha256 of its files as registered."""
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        return Path(mv.path), registry.pinned_files(mv)


def load_into_server(
    ws: Workspace,
    path: Path,
    name: str,
    server_url: str,
    files_sha256: dict[str, str] | None = None,
) -> None:
    """Check the adapter as a deploy does (its files' sha256 included: what is gated must be
    what will be served), then load it. Everything the eval reads of the candidate later (the
    merged copy, its shape) reads the folder checked here."""
    from ct_llm.deploy.adapter_checks import check_adapter
    from ct_llm.deploy.vllm_client import VllmClient

    check_adapter(
        path,
        ws.adapters_dir,
        ws.config.serving.max_lora_rank,
        ws.require_base_model(),
        files_sha256,
    )
    VllmClient(server_url).load_adapter(name, str(path))


def heldout_prompts(ws: Workspace, tenant: str, version_id: str) -> tuple[list[Any], str | None]:
    """The prompts of the candidate's curated held-out split (dpo, kto and sft `test`), unique,
    a seeded sample of at most `eval.judge.max_prompts`; and the dataset version they came from."""
    from ct_llm.curate.layout import KINDS, read_rows
    from ct_llm.evals.evaluate import Prompt

    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        ds = session.get(DatasetVersion, mv.dataset_version) if mv.dataset_version else None
        ds_path = Path(ds.path) if ds is not None else None
        ds_id = ds.id if ds is not None else None
    if ds_path is None:
        return [], None
    seen: dict[str, list[dict[str, str]]] = {}
    for kind in KINDS:
        for row in read_rows(ds_path, kind, "test"):
            msgs = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            if msgs and msgs[-1]["role"] == "user":
                seen.setdefault(json.dumps(msgs, sort_keys=True), msgs)
    convs = list(seen.values())
    limit = ws.config.eval.judge.max_prompts
    if len(convs) > limit:
        keep = set(random.Random(0).sample(range(len(convs)), limit))
        convs = [c for i, c in enumerate(convs) if i in keep]
    return [Prompt(f"heldout-{i + 1:03d}", c) for i, c in enumerate(convs)], ds_id


def _latency_settled(ws: Workspace, label: str) -> Any:
    """The gate's own latency rule as the performance phase's stopping rule."""

    def settled(cand: list[list[float]], ref: list[list[float]]) -> bool:
        return latency_settled(LatencySamples.from_rounds(cand, ref, label), ws.config.gate)

    return settled


def _options(
    ws: Workspace,
    server_url: str,
    adapter_dir: Path,
    extra: dict[str, Any],
    endpoints: dict[str, str],
    reference: tuple[str, str] | None,
    on_answered: Any = None,
) -> Any:
    from ct_llm.evals.evaluate import EvalOptions, RagOptions
    from ct_llm.evals.judge import JudgeSettings

    cfg = ws.config.eval
    judge = perf = None
    judge_url = cfg.judge.url or server_url
    judge_model = cfg.judge.model or ws.config.base_model
    judge_key = "none"
    if cfg.judge.api_key_env:
        judge_key = os.environ.get(cfg.judge.api_key_env, "")
        if not judge_key:
            raise ConfigError(
                f"eval.judge.api_key_env names {cfg.judge.api_key_env}, which is not set; "
                "export the judge's API key in it"
            )
    if cfg.judge.enabled:
        judge = JudgeSettings(
            judge_url,
            judge_model,
            api_key=judge_key,
            max_requests=cfg.judge.max_requests,
            max_tokens=cfg.judge.max_tokens,
            guided=cfg.judge.guided,
            concurrency=cfg.concurrency,
        )
    rag = RagOptions(
        judge_url,
        judge_model,
        api_key=judge_key,
        metrics=tuple(cfg.rag.metrics),
        timeout_s=cfg.rag.timeout_s,
        max_tokens=cfg.rag.max_tokens,
        max_list_items=cfg.rag.max_list_items,
    )
    if cfg.performance.enabled:
        perf = cfg.performance
    return EvalOptions(
        max_tokens=cfg.max_tokens,
        concurrency=cfg.concurrency,
        judge=judge,
        rag=rag,
        performance=perf,
        adapter_dir=adapter_dir,
        serving_dtype=serving_dtype(ws.config.serving.dtype),
        endpoints=endpoints,
        extra=extra,
        recheck_sample=cfg.recheck_sample if cfg.recheck else None,
        latency_reference=reference,
        latency_settled=_latency_settled(ws, reference[1] if reference else "production"),
        on_answered=on_answered,
    )


def evaluate_candidate(
    ws: Workspace, tenant: str, version_id: str, *, server_url: str, suites: list[str] | None = None
) -> dict[str, Any]:
    from ct_llm.deploy.vllm_client import VllmClient
    from ct_llm.evals.evaluate import evaluate
    from ct_llm.evals.report import write_report
    from ct_llm.evals.suite import load_suites
    from ct_llm.gate.policy import decide_promotion
    from ct_llm.gate.scores import scores_from_summary

    baseline = baseline_model(ws, tenant)
    if baseline == version_id:
        raise RegistryError(f"{version_id} is already production; evaluate a newer candidate")
    adapter_dir, pinned = _adapter(ws, tenant, version_id)  # fails clearly on an unknown version
    loaded = load_suites(suites or ws.config.eval.suites)
    prompts: list[Any] = []
    dataset = None
    if ws.config.eval.judge.enabled and ws.config.eval.judge.heldout:
        prompts, dataset = heldout_prompts(ws, tenant, version_id)
    if baseline != ws.config.base_model:
        baseline_dir, baseline_pinned = _adapter(ws, tenant, baseline)
        load_into_server(ws, baseline_dir, baseline, server_url, baseline_pinned)
    served_as = f"eval-{version_id}-{uuid.uuid4().hex[:8]}"
    # Loaded into the live server in both modes: the performance phase measures it there.
    load_into_server(ws, adapter_dir, served_as, server_url, pinned)
    mode = detect_mode(ws.config.eval.candidate_serving, ws.config.serving)
    extra: dict[str, Any] = {
        "candidate_served_as": served_as,
        "heldout_dataset": dataset,
        "candidate_serving": mode,
    }
    reference = None
    ref_dir = ws.root / "tmp" / f"ref-{served_as}"
    if ws.config.eval.performance.enabled and baseline == ws.config.base_model:
        # Like with like: before the first promotion the candidate's latency is compared with
        # an adapter of its own shape, not with the bare base model (gate/latency.py).
        reference = (
            f"ref-{served_as}",
            f"a zero adapter of its shape ({adapter_shape(adapter_dir)})",
        )
    try:
        with contextlib.ExitStack() as stack:
            if reference is not None:
                write_reference_adapter(adapter_dir, ref_dir)
                VllmClient(server_url).load_adapter(reference[0], str(ref_dir))
                extra["latency_reference"] = reference[1]
            endpoints: dict[str, str] = {}
            # The merged server answers the first phase only; stopped as soon as it is done.
            servers = contextlib.ExitStack()
            stack.enter_context(servers)
            if mode == "merged":
                merged = servers.enter_context(
                    serve_merged(
                        ws.require_base_model(),
                        adapter_dir,
                        served_as,
                        ws.config.serving,
                        memory_fraction=ws.config.eval.merged_memory_fraction,
                        work_dir=ws.root / "tmp",
                        log_path=ws.logs_dir / f"vllm-{served_as}.log",
                    )
                )
                extra["merge_s"] = round(merged.merge_s, 2)
                extra["merged_server_start_s"] = round(merged.start_s, 2)
                endpoints = {served_as: merged.url}
            opts = _options(ws, server_url, adapter_dir, extra, endpoints, reference, servers.close)
            result = evaluate(server_url, served_as, baseline, loaded, prompts, opts)
    finally:
        for name in [served_as] + ([reference[0]] if reference else []):
            try:
                VllmClient(server_url).unload_adapter(name)
            except Exception as e:  # the eval's outcome matters more than a failed cleanup
                log.warning("could not unload %s from %s: %s", name, server_url, e)
        shutil.rmtree(ref_dir, ignore_errors=True)
    result.candidate = version_id
    summary = result.summary()
    cand, prod = scores_from_summary(summary)
    decision = decide_promotion(
        cand, prod, ws.config.gate, serving_max_rank=ws.config.serving.max_lora_rank
    )
    created = datetime.now(timezone.utc)
    report_id = f"{version_id}-{created.strftime('%Y%m%dT%H%M%SZ')}"
    report_dir = ws.reports_dir / report_id
    payload = {
        "id": report_id,
        "created_at": created.isoformat(),
        "tenant": tenant,
        **result.to_dict(),
        "decision": decision.to_dict(),
        "policy": ws.config.gate.model_dump(),
    }
    write_report(report_dir, payload)
    with session_scope(ws.database_url) as session:
        session.add(
            EvalReport(
                id=report_id,
                tenant=tenant,
                candidate=version_id,
                baseline=baseline,
                path=str(report_dir),
                summary=summary,
            )
        )
        registry.record(
            session,
            tenant,
            version_id,
            "eval",
            "done",
            "cli",
            {"report": report_id, "baseline": baseline, "summary": summary},
        )
    return {
        "report": report_id,
        "path": str(report_dir / "report.html"),
        "baseline": baseline,
        "summary": summary,
        "gate_preview": decision.to_dict(),
    }


def latest_report(session: Any, tenant: str, version_id: str) -> EvalReport | None:
    return session.scalars(
        select(EvalReport)
        .where(EvalReport.tenant == tenant, EvalReport.candidate == version_id)
        .order_by(EvalReport.created_at.desc())
        .limit(1)
    ).first()
