"""`ct-llm lineage <version>`: why is this model where it is, what data made it, who approved it,
and how to undo it — from the registry, the dataset and adapter manifests and the eval reports.

`chain` lists the links in order: feedback events -> dataset version -> adapter -> eval report(s)
-> gate decision(s) -> deployments (canary, promotion, rollback). Each link says where its
evidence lives (a manifest path, a report folder, a lineage event id), so the answer to "why" can
be checked rather than trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion, EvalReport, LineageEvent
from ct_llm.workspace import Workspace

_DEPLOY_ACTIONS = ("deploy", "promote", "rollback", "canary")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _dataset(session: Any, version: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if not version:
        return None, {}
    ds = session.get(DatasetVersion, version)
    if ds is None:
        return {"version": version, "missing": True}, {}
    manifest = _read_json(Path(ds.path) / "manifest.json")
    return (
        {
            "version": ds.id,
            "path": ds.path,
            "manifest_sha256": ds.manifest_sha256,
            "counts": ds.counts,
            "drops": manifest.get("drops"),
            "pii_scrubbed": manifest.get("pii_scrubbed"),
            "quarantined": manifest.get("quarantined"),
            "source_events": manifest.get("source_events"),
            "parent": ds.parent,
            "created_at": ds.created_at.isoformat(),
        },
        manifest,
    )


def _adapter(mv: Any) -> dict[str, Any]:
    from ct_llm.train.manifest import read_manifest

    manifest = read_manifest(Path(mv.path)) or {}
    return {
        "version": mv.id,
        "path": mv.path,
        "state": mv.state,
        "parent_version": mv.parent_version,
        "created_at": mv.created_at.isoformat(),
        "method": manifest.get("method"),
        "base_model": manifest.get("base_model"),
        "recipe_sha256": manifest.get("recipe_sha256"),
        "files_sha256": manifest.get("files"),
        "git_commit": manifest.get("git_commit"),
        "metrics": manifest.get("metrics") or mv.info.get("metrics"),
    }


def _event(e: LineageEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.created_at.isoformat(),
        "action": e.action,
        "outcome": e.outcome,
        "actor": e.actor,
        "details": e.details,
    }


def build_chain(
    dataset: dict[str, Any] | None,
    adapter: dict[str, Any],
    reports: list[dict[str, Any]],
    events: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The links from feedback to deployment, in order (pure: plain dicts in, list out)."""
    chain: list[dict[str, Any]] = []
    if dataset is not None:
        chain.append({"link": "events", **(dataset.get("source_events") or {})})
        chain.append(
            {"link": "dataset", "version": dataset.get("version"), "counts": dataset.get("counts")}
        )
    chain.append(
        {"link": "adapter", "version": adapter["version"], "parent": adapter["parent_version"]}
    )
    for r in reports:
        chain.append(
            {"link": "report", "id": r["id"], "path": r["path"], "baseline": r["baseline"]}
        )
    for e in events:
        if e["action"] == "gate":
            failed = [x["rule"] for x in e["details"].get("reasons", []) if not x.get("passed")]
            chain.append(
                {
                    "link": "decision",
                    "outcome": e["outcome"],
                    "report": e["details"].get("report"),
                    "failed_rules": failed,
                    "actor": e["actor"],
                    "at": e["at"],
                    "event": e["id"],
                }
            )
        elif e["action"] in _DEPLOY_ACTIONS:
            chain.append(
                {
                    "link": "deployment",
                    "action": e["action"],
                    "outcome": e["outcome"],
                    "actor": e["actor"],
                    "at": e["at"],
                    "event": e["id"],
                }
            )
    return chain


def explain_version(ws: Workspace, tenant: str, version_id: str) -> dict[str, Any]:
    with session_scope(ws.database_url) as session:
        mv = registry.get_version(session, tenant, version_id)
        dataset, _ = _dataset(session, mv.dataset_version)
        adapter = _adapter(mv)
        reports = [
            {
                "id": r.id,
                "baseline": r.baseline,
                "path": r.path,
                "created_at": r.created_at.isoformat(),
                "summary": r.summary,
            }
            for r in session.scalars(
                select(EvalReport)
                .where(EvalReport.tenant == tenant, EvalReport.candidate == version_id)
                .order_by(EvalReport.created_at)
            )
        ]
        events = [_event(e) for e in registry.history(session, tenant, version_id)]
        aliases = {
            name: (a.model_version if (a := registry.get_alias(session, tenant, name)) else None)
            for name in (registry.PRODUCTION, registry.CANARY)
        }
        undo = None
        if version_id in aliases.values():
            undo = f"ct-llm rollback --workspace {ws.root} --tenant {tenant}"
        transitions = [
            {"at": e["at"], "actor": e["actor"], **e["details"]}
            for e in events
            if e["action"] == "transition"
        ]
        return {
            "version": mv.id,
            "tenant": tenant,
            "state": mv.state,
            "path": mv.path,
            "parent_version": mv.parent_version,
            "created_at": mv.created_at.isoformat(),
            "chain": build_chain(dataset, adapter, reports, events),
            "training": mv.info,
            "adapter": adapter,
            "dataset": dataset,
            "eval_reports": reports,
            "transitions": transitions,
            "history": events,
            "aliases": aliases,
            "undo": undo,
        }
