"""What is served, what is pending, and how the loop and the users' votes are doing, for one
tenant. `tenant_status` answers the API's `GET /v1/status` (any key of the tenant);
`operator_status` adds what an operator needs at a glance and backs `ct-llm status` and the
status page.

Every read is an aggregate or a newest-N query (monitor/queries.py): what comes back to Python
is a few rows however many events a tenant has, and the feedback is read in one grouped pass
(counts by kind, all-time and recent votes together).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.monitor import queries
from ct_llm.monitor.quality import VoteTally, tally_by_version
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, LineageEvent, utcnow
from ct_llm.workspace import Workspace

RECENT_HOURS = 24.0
"""The window of the `recent_quality` figures: long enough for a few hundred votes on a small
deployment, short enough that a bad promotion shows the same day."""
VERSION_CHANGES = ("promote", "rollback")


def _at(moment: datetime) -> str:
    return queries.as_utc(moment).isoformat()


def _feedback(
    session: Session, tenant: str, recent_since: datetime
) -> tuple[dict[str, Any], dict[str, VoteTally]]:
    """The tenant's feedback counts and vote summary per version, all time, and the tallies of
    the votes received since `recent_since`: one grouped pass over the events."""
    rows = queries.feedback_counts(session, recent_since, tenant)
    by_kind: dict[str, int] = {}
    for _, _, kind, _, _, n in rows:
        by_kind[kind] = by_kind.get(kind, 0) + n
    votes = tally_by_version((v, k, x, n) for _, v, k, x, _, n in rows if x is not None)
    recent = tally_by_version((v, k, x, n) for _, v, k, x, r, n in rows if x is not None and r)
    summary = {
        "total": sum(by_kind.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "by_model_version": {v: t.to_dict() for v, t in votes.items()},
    }
    return summary, recent


def _tenant_status(
    session: Session, tenant: str, base_model: str, recent_since: datetime
) -> tuple[dict[str, Any], dict[str, VoteTally]]:
    prod = registry.get_alias(session, tenant, registry.PRODUCTION)
    canary = registry.get_alias(session, tenant, registry.CANARY)
    responses = session.scalar(
        select(func.count()).select_from(ChatResponse).where(ChatResponse.tenant == tenant)
    )
    feedback, recent = _feedback(session, tenant, recent_since)
    status = {
        "tenant": tenant,
        "base_model": base_model,
        "production": prod.model_version if prod else None,
        "canary": {"version": canary.model_version, "weight": canary.weight} if canary else None,
        "responses_logged": responses or 0,
        "feedback": feedback,
    }
    return status, recent


def tenant_status(session: Session, tenant: str, base_model: str) -> dict[str, Any]:
    """Aliases, traffic and feedback of one tenant (safe to show to that tenant's API keys)."""
    return _tenant_status(session, tenant, base_model, utcnow())[0]


def event_summary(e: LineageEvent) -> dict[str, Any]:
    return {
        "at": _at(e.created_at),
        "action": e.action,
        "outcome": e.outcome,
        "version": e.model_version,
        "actor": e.actor,
    }


def cycle_summary(e: LineageEvent) -> dict[str, Any]:
    """A `cycle` lineage event as status shows it: when, how it ended, why, how long."""
    d = e.details if isinstance(e.details, dict) else {}
    return {
        "at": _at(e.created_at),
        "outcome": e.outcome,
        "candidate": e.model_version,
        **{k: d[k] for k in ("reason", "duration_s", "forced", "error", "triggers") if k in d},
    }


def _canary(session: Session, tenant: str) -> dict[str, Any] | None:
    alias = registry.get_alias(session, tenant, registry.CANARY)
    if alias is None:
        return None
    checks = queries.recent_events(
        session, tenant, ("canary_check",), 1, model_version=alias.model_version
    )
    last_check = None
    if checks:
        c = checks[0]
        d = c.details if isinstance(c.details, dict) else {}
        last_check = {
            "at": _at(c.created_at),
            "action": c.outcome,
            "actor": c.actor,
            "applied": d.get("applied"),
            "reasons": d.get("reasons", []),
        }
    return {
        "version": alias.model_version,
        "weight": alias.weight,
        "since": _at(alias.updated_at),
        "last_check": last_check,
    }


def _last_eval(session: Session, tenant: str) -> dict[str, Any] | None:
    reports = queries.recent_reports(session, tenant, 1)
    if not reports:
        return None
    r = reports[0]
    gates = queries.recent_events(session, tenant, ("gate",), 1, model_version=r.candidate)
    return {
        "report": r.id,
        "candidate": r.candidate,
        "baseline": r.baseline,
        "at": _at(r.created_at),
        "path": r.path,
        "verdict": gates[0].outcome if gates else None,
    }


def operator_status(
    session: Session,
    tenant: str,
    base_model: str,
    recent_hours: float = RECENT_HOURS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`tenant_status` plus the operator's view: the canary's state, the registry, the loop's
    last cycle and trigger values, recent quality per version, the last version change and
    the last eval."""
    now = now or utcnow()
    status, recent = _tenant_status(
        session, tenant, base_model, now - timedelta(hours=recent_hours)
    )
    cycles = queries.recent_events(session, tenant, ("cycle",), 1)
    last_cycle = None
    if cycles:
        # Everything the cycle recorded, as before: reason, triggers, duration, error.
        c = cycles[0]
        last_cycle = {"at": _at(c.created_at), "outcome": c.outcome, **(c.details or {})}
    # A scheduler records a skipped cycle every few minutes; the last one that did work matters.
    ran = queries.recent_events(session, tenant, ("cycle",), 1, except_outcomes=("skipped",))
    changes = queries.recent_events(session, tenant, VERSION_CHANGES, 1)
    return {
        **status,
        "canary": _canary(session, tenant),
        "versions": [
            {"version": v.id, "state": v.state, "dataset": v.dataset_version}
            for v in registry.list_versions(session, tenant)
        ],
        "last_cycle": last_cycle,
        "triggers": (last_cycle or {}).get("triggers") or {},
        "last_cycle_that_ran": cycle_summary(ran[0]) if ran else None,
        "cycles_by_outcome": queries.outcome_counts(session, tenant, "cycle"),
        "last_version_change": event_summary(changes[0]) if changes else None,
        "last_eval": _last_eval(session, tenant),
        "recent_quality": {
            "hours": recent_hours,
            "by_model_version": {v: t.to_dict() for v, t in recent.items()},
        },
    }


def workspace_status(ws: Workspace, tenant: str) -> dict[str, Any]:
    """`operator_status` of one tenant of a workspace (what `ct-llm status` prints)."""
    with session_scope(ws.database_url) as session:
        return {
            "workspace": str(ws.root),
            **operator_status(session, tenant, ws.config.base_model),
        }
