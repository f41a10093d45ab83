"""`ct-llm eval`: evaluate a candidate adapter against production on the live vLLM server and
write `reports/<id>/`. The report already shows the verdict the gate policy would give."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ct_llm.errors import RegistryError
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import EvalReport
from ct_llm.workspace import Workspace


def baseline_model(ws: Workspace, tenant: str) -> str:
    """What users get today: the production adapter, or the base model when there is none."""
    with session_scope(ws.database_url) as session:
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        return prod.model_version if prod else ws.config.base_model


def load_into_server(ws: Workspace, tenant: str, version_id: str, server_url: str) -> None:
    from ct_llm.deploy.adapter_checks import check_adapter
    from ct_llm.deploy.vllm_client import VllmClient

    if version_id == ws.config.base_model:
        return
    with session_scope(ws.database_url) as session:
        path = Path(registry.get_version(session, tenant, version_id).path)
    check_adapter(path, ws.adapters_dir, ws.config.serving.max_lora_rank, ws.require_base_model())
    VllmClient(server_url).load_adapter(version_id, str(path))


def evaluate_candidate(
    ws: Workspace, tenant: str, version_id: str, *, server_url: str, suites: list[str] | None = None
) -> dict[str, Any]:
    from ct_llm.evals.report import write_report
    from ct_llm.evals.runner import evaluate
    from ct_llm.evals.suite import load_suites
    from ct_llm.gate.policy import GatePolicy, decide_promotion

    with session_scope(ws.database_url) as session:
        registry.get_version(session, tenant, version_id)  # fails clearly on an unknown version
    baseline = baseline_model(ws, tenant)
    if baseline == version_id:
        raise RegistryError(f"{version_id} is already production; evaluate a newer candidate")
    loaded = load_suites(suites or ws.config.eval.suites)
    load_into_server(ws, tenant, version_id, server_url)
    load_into_server(ws, tenant, baseline, server_url)
    result = evaluate(
        server_url,
        version_id,
        baseline,
        loaded,
        max_tokens=ws.config.eval.max_tokens,
        concurrency=ws.config.eval.concurrency,
    )
    summary = result.summary()
    decision = decide_promotion(summary, GatePolicy.from_config(ws.config.gate))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report_id = f"{version_id}-{stamp}"
    report_dir = ws.reports_dir / report_id
    write_report(report_dir, result, decision.to_dict())
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
