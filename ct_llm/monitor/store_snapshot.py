"""What the Prometheus metrics report from the store, read in one go: the feedback counts of
every tenant, the lineage counts, the newest cycle and canary check per group, the aliases.

Cycles, canary checks and promotions happen in other processes (`ct-llm cycle`, `ct-llm
schedule`, CronJobs, other API replicas), so their metrics are read from the store at scrape
time rather than counted in this process. Every read is an aggregate (monitor/queries.py): one
grouped scan of the feedback table, one of the lineage log, and a handful of rows besides
(the aliases, and the registry's version names that feedback may be labelled with).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ct_llm.monitor import queries
from ct_llm.registry.registry import known_versions
from ct_llm.store.models import LineageEvent, utcnow


@dataclass(frozen=True)
class CycleRow:
    """The newest cycle of one tenant with one outcome."""

    tenant: str
    outcome: str
    at: float
    """Unix time."""
    duration_s: float | None
    triggers: dict[str, Any]


@dataclass(frozen=True)
class StoreSnapshot:
    feedback: list[tuple[str, str | None, str, str | None, bool, int]] = field(default_factory=list)
    """(tenant, model_version, kind, vote_text, received in the window, count)."""
    lineage: list[tuple[str, str, str, int]] = field(default_factory=list)
    """(tenant, action, outcome, count)."""
    cycles: list[CycleRow] = field(default_factory=list)
    aliases: list[tuple[str, str, str, float, float]] = field(default_factory=list)
    """(tenant, alias name, version, weight, set at: Unix time)."""
    canary_checks: list[tuple[str, str, str, float]] = field(default_factory=list)
    """The newest check per tenant and version: (tenant, version, action, Unix time)."""
    known_versions: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per tenant, the version names the registry knows (the only ones used as labels)."""
    window_h: float = 24.0
    read_at: float = 0.0
    """Unix time of the read."""
    read_s: float = 0.0
    """How long the read took."""


def _epoch(moment: datetime) -> float:
    return queries.as_utc(moment).timestamp()


def _cycle_row(e: LineageEvent) -> CycleRow:
    d = e.details if isinstance(e.details, dict) else {}
    duration = d.get("duration_s")
    triggers = d.get("triggers")
    return CycleRow(
        tenant=e.tenant,
        outcome=e.outcome,
        at=_epoch(e.created_at),
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        triggers=triggers if isinstance(triggers, dict) else {},
    )


def read_snapshot(session: Session, window_h: float, now: datetime | None = None) -> StoreSnapshot:
    started = time.perf_counter()
    now = now or utcnow()
    feedback = queries.feedback_counts(session, now - timedelta(hours=window_h))
    lineage = queries.lineage_counts(session)
    cycles = [
        _cycle_row(e)
        for e in queries.newest_per_group(
            session, "cycle", LineageEvent.tenant, LineageEvent.outcome
        )
    ]
    checks = [
        (e.tenant, e.model_version or "", e.outcome, _epoch(e.created_at))
        for e in queries.newest_per_group(
            session, "canary_check", LineageEvent.tenant, LineageEvent.model_version
        )
    ]
    aliases = [
        (a.tenant, a.name, a.model_version, a.weight, _epoch(a.updated_at))
        for a in queries.all_aliases(session)
    ]
    return StoreSnapshot(
        feedback=feedback,
        lineage=lineage,
        cycles=cycles,
        aliases=aliases,
        canary_checks=checks,
        known_versions=known_versions(session),
        window_h=window_h,
        read_at=now.timestamp(),
        read_s=time.perf_counter() - started,
    )
