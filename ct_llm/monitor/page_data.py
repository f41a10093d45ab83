"""Everything the status page shows, read from the store into one JSON-safe payload; the page
(monitor/page.py) is rendered from this payload alone.

What comes back from the store stays small: votes are aggregated per day, version and value
over the chosen window (at most `MAX_DAYS`), lineage and reports are the newest few rows. The
database does two grouped passes over the tenant's feedback (the status, the days).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ct_llm.atomic import atomic_write_text
from ct_llm.errors import ConfigError
from ct_llm.feedback.vote_query import daily_vote_counts
from ct_llm.monitor import queries
from ct_llm.monitor.quality import daily_quality
from ct_llm.monitor.status import VERSION_CHANGES, cycle_summary, operator_status
from ct_llm.monitor.timeline import transition_rows, version_changes
from ct_llm.store.db import session_scope
from ct_llm.store.models import EvalReport, LineageEvent, utcnow
from ct_llm.workspace import Workspace

DEFAULT_DAYS = 30
MAX_DAYS = 365
TRANSITIONS_SHOWN = 40
REPORTS_SHOWN = 5
CYCLES_SHOWN = 10


def check_days(days: int) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}")
    return days


def lineage_dict(e: LineageEvent) -> dict[str, Any]:
    return {
        "at": queries.as_utc(e.created_at).isoformat(),
        "action": e.action,
        "outcome": e.outcome,
        "version": e.model_version,
        "actor": e.actor,
        "details": e.details if isinstance(e.details, dict) else {},
    }


def _report(session: Session, tenant: str, r: EvalReport) -> dict[str, Any]:
    """An eval report's headline: its verdict (the gate event that read this report, else the
    candidate's latest), the rules it failed, pass rates per suite, the judge's win rate."""
    gates = [
        lineage_dict(e)
        for e in queries.recent_events(session, tenant, ("gate",), 20, model_version=r.candidate)
    ]
    read_this = [g for g in gates if g["details"].get("report") == r.id]
    gate = (read_this or gates or [None])[0]
    summary = r.summary if isinstance(r.summary, dict) else {}
    suites = summary.get("suites") if isinstance(summary.get("suites"), dict) else {}
    judge = summary.get("judge") if isinstance(summary.get("judge"), dict) else None
    return {
        "id": r.id,
        "candidate": r.candidate,
        "baseline": r.baseline,
        "at": queries.as_utc(r.created_at).isoformat(),
        "verdict": gate["outcome"] if gate else None,
        "failed_rules": [
            x.get("rule")
            for x in (gate["details"].get("reasons") or [] if gate else [])
            if isinstance(x, dict) and not x.get("passed")
        ],
        "suites": [
            {
                "name": name,
                "kind": s.get("kind"),
                "candidate": s.get("candidate_pass_rate"),
                "baseline": s.get("baseline_pass_rate"),
                "n": s.get("n"),
            }
            for name, s in suites.items()
            if isinstance(s, dict)
        ],
        "judge": {k: judge.get(k) for k in ("rate", "low", "high", "n")} if judge else None,
    }


def status_page_payload(
    session: Session,
    tenant: str,
    base_model: str,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The status page's data for one tenant over the last `days` UTC days (today included)."""
    days = check_days(days)
    now = queries.as_utc(now or utcnow())
    first_day = (now - timedelta(days=days - 1)).date()
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=now.tzinfo)
    quality = daily_quality(daily_vote_counts(session, tenant, since))
    changes = version_changes(
        [
            lineage_dict(e)
            for e in queries.recent_events(session, tenant, VERSION_CHANGES, 500, since=since)
        ]
    )
    transitions = transition_rows(
        [
            lineage_dict(e)
            for e in queries.recent_events(session, tenant, ("transition",), TRANSITIONS_SHOWN)
        ]
    )
    return {
        "tenant": tenant,
        "generated_at": now.isoformat(),
        "days": days,
        "first_day": first_day.isoformat(),
        "last_day": now.date().isoformat(),
        "status": operator_status(session, tenant, base_model, now=now),
        "quality": [q.to_dict() for q in quality],
        "changes": [c.to_dict() for c in changes],
        "transitions": transitions,
        "reports": [
            _report(session, tenant, r)
            for r in queries.recent_reports(session, tenant, REPORTS_SHOWN)
        ],
        "cycles": [
            cycle_summary(e)
            for e in queries.recent_events(session, tenant, ("cycle",), CYCLES_SHOWN)
        ],
    }


def write_status_page(ws: Workspace, tenant: str, path: Path, days: int = DEFAULT_DAYS) -> Path:
    """Write the status page of `tenant` to `path` (atomically); returns the path."""
    from ct_llm.monitor.page import render_status_page

    days = check_days(days)
    with session_scope(ws.database_url) as session:
        payload = status_page_payload(session, tenant, ws.config.base_model, days=days)
    path = Path(path)
    atomic_write_text(path, render_status_page(payload))
    return path
