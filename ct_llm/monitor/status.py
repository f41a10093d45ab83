"""`ct-llm status`: what is served, what is pending, and the last cycle, for one tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent
from ct_llm.workspace import Workspace


def workspace_status(ws: Workspace, tenant: str) -> dict[str, Any]:
    with session_scope(ws.database_url) as session:
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        canary = registry.get_alias(session, tenant, registry.CANARY)
        by_kind = dict(
            session.execute(
                select(FeedbackEvent.kind, func.count())
                .where(FeedbackEvent.tenant == tenant)
                .group_by(FeedbackEvent.kind)
            ).all()
        )
        responses = session.scalar(
            select(func.count()).select_from(ChatResponse).where(ChatResponse.tenant == tenant)
        )
        cycles = [e for e in registry.history(session, tenant) if e.action == "cycle"]
        last_cycle = None
        if cycles:
            c = cycles[-1]
            last_cycle = {"at": c.created_at.isoformat(), "outcome": c.outcome, **c.details}
        return {
            "workspace": str(ws.root),
            "tenant": tenant,
            "base_model": ws.config.base_model,
            "production": prod.model_version if prod else None,
            "canary": {"version": canary.model_version, "weight": canary.weight}
            if canary
            else None,
            "versions": [
                {"version": v.id, "state": v.state, "dataset": v.dataset_version}
                for v in registry.list_versions(session, tenant)
            ],
            "responses_logged": responses or 0,
            "feedback": {"total": sum(by_kind.values()), "by_kind": by_kind},
            "last_cycle": last_cycle,
        }
