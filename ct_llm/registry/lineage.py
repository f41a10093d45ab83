"""`ct-llm lineage <version>`: why is this model where it is, what data made it, who approved it,
and how to undo it — from the registry, the dataset manifest and the eval reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion, EvalReport
from ct_llm.workspace import Workspace


def explain_version(ws: Workspace, tenant: str, version_id: str) -> dict[str, Any]:
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        dataset: dict[str, Any] | None = None
        if mv.dataset_version:
            ds = session.get(DatasetVersion, mv.dataset_version)
            if ds is not None:
                manifest_path = Path(ds.path) / "manifest.json"
                manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
                dataset = {
                    "version": ds.id,
                    "path": ds.path,
                    "manifest_sha256": ds.manifest_sha256,
                    "counts": ds.counts,
                    "drops": manifest.get("drops"),
                    "source_events": manifest.get("source_events"),
                    "parent": ds.parent,
                }
        reports = [
            {"id": r.id, "baseline": r.baseline, "path": r.path, "summary": r.summary}
            for r in session.scalars(
                select(EvalReport)
                .where(EvalReport.tenant == tenant, EvalReport.candidate == version_id)
                .order_by(EvalReport.created_at)
            )
        ]
        events = [
            {
                "at": e.created_at.isoformat(),
                "action": e.action,
                "outcome": e.outcome,
                "actor": e.actor,
                "details": e.details,
            }
            for e in registry.history(session, tenant, version_id)
        ]
        aliases = {
            name: (a.model_version if (a := registry.get_alias(session, tenant, name)) else None)
            for name in (registry.PRODUCTION, registry.CANARY)
        }
        undo = None
        if aliases[registry.PRODUCTION] == version_id or aliases[registry.CANARY] == version_id:
            undo = f"ct-llm rollback --workspace {ws.root} --tenant {tenant}"
        return {
            "version": mv.id,
            "tenant": tenant,
            "state": mv.state,
            "path": mv.path,
            "parent_version": mv.parent_version,
            "created_at": mv.created_at.isoformat(),
            "training": mv.info,
            "dataset": dataset,
            "eval_reports": reports,
            "history": events,
            "aliases": aliases,
            "undo": undo,
        }
