"""What is served, what is pending, and the last cycle, for one tenant. Shared by
`ct-llm status` and the API's `GET /v1/status`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.feedback.stats import feedback_stats
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse
from ct_llm.workspace import Workspace


def tenant_status(session: Session, tenant: str, base_model: str) -> dict[str, Any]:
    """Aliases, traffic and feedback of one tenant (safe to show to that tenant's API keys)."""
    prod = registry.get_alias(session, tenant, registry.PRODUCTION)
    canary = registry.get_alias(session, tenant, registry.CANARY)
    responses = session.scalar(
        select(func.count()).select_from(ChatResponse).where(ChatResponse.tenant == tenant)
    )
    stats = feedback_stats(session, tenant)
    return {
        "tenant": tenant,
        "base_model": base_model,
        "production": prod.model_version if prod else None,
        "canary": {"version": canary.model_version, "weight": canary.weight} if canary else None,
        "responses_logged": responses or 0,
        "feedback": {
            "total": stats["total"],
            "by_kind": stats["by_kind"],
            "by_model_version": stats["by_model_version"],
        },
    }


def workspace_status(ws: Workspace, tenant: str) -> dict[str, Any]:
    """`tenant_status` plus the operator's view: registry versions and the last cycle."""
    with session_scope(ws.database_url) as session:
        status = tenant_status(session, tenant, ws.config.base_model)
        cycles = [e for e in registry.history(session, tenant) if e.action == "cycle"]
        last_cycle = None
        if cycles:
            c = cycles[-1]
            last_cycle = {"at": c.created_at.isoformat(), "outcome": c.outcome, **c.details}
        return {
            "workspace": str(ws.root),
            **status,
            "versions": [
                {"version": v.id, "state": v.state, "dataset": v.dataset_version}
                for v in registry.list_versions(session, tenant)
            ],
            "last_cycle": last_cycle,
        }
