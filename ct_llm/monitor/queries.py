"""The store reads behind status, the status page and the metrics: aggregate queries only.

Feedback grows without bound, so no read here loads events one by one: the database groups them
and returns a few rows per tenant, model version, kind and vote value, whatever the number of
events (the status page's daily votes follow the vote definition instead:
feedback/vote_query.py). Vote values are grouped as JSON text because JSON operators differ
between SQLite and PostgreSQL (and PostgreSQL's json type cannot be grouped); monitor/quality.py
parses the few distinct texts. Grouped expressions are computed in a subquery first: PostgreSQL
would otherwise see the bound parameters of the SELECT and GROUP BY copies as different
expressions.

Lineage reads take the newest rows by id (ids grow with time) and always name a limit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Text, case, cast, func, select
from sqlalchemy.orm import Session

from ct_llm.store.models import Alias, EvalReport, FeedbackEvent, LineageEvent

VOTE_KINDS = ("thumbs", "rating")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything ct-llm stores is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _vote_text() -> Any:
    """The stored JSON of a vote as text; NULL for other kinds, whose values (edited answers,
    comments) are free text and would make one group per event."""
    return case(
        (FeedbackEvent.kind.in_(VOTE_KINDS), cast(FeedbackEvent.value, Text)),
        else_=None,
    )


def feedback_counts(
    session: Session, recent_since: datetime, tenant: str | None = None
) -> list[tuple[str, str | None, str, str | None, bool, int]]:
    """Every tenant's events (or one tenant's), in one scan: (tenant, model_version, kind,
    vote_text or None, received since `recent_since`, count). Counts by kind, all-time votes
    and recent votes all come from these rows, so a status costs one pass over the events."""
    recent = case((FeedbackEvent.received_at >= as_utc(recent_since), 1), else_=0)
    inner = select(
        FeedbackEvent.tenant.label("tenant"),
        FeedbackEvent.model_version.label("version"),
        FeedbackEvent.kind.label("kind"),
        _vote_text().label("vote"),
        recent.label("recent"),
    )
    if tenant is not None:
        inner = inner.where(FeedbackEvent.tenant == tenant)
    sub = inner.subquery()
    cols = (sub.c.tenant, sub.c.version, sub.c.kind, sub.c.vote, sub.c.recent)
    stmt = select(*cols, func.count()).group_by(*cols)
    return [(t, v, k, x, bool(r), int(n)) for t, v, k, x, r, n in session.execute(stmt)]


def lineage_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(tenant, action, outcome, count) over the whole lineage log."""
    cols = (LineageEvent.tenant, LineageEvent.action, LineageEvent.outcome)
    stmt = select(*cols, func.count()).group_by(*cols)
    return [(t, a, o, int(n)) for t, a, o, n in session.execute(stmt)]


def newest_per_group(session: Session, action: str, *group: Any) -> list[LineageEvent]:
    """The newest `action` event of each group (e.g. per tenant and outcome)."""
    newest = select(func.max(LineageEvent.id)).where(LineageEvent.action == action).group_by(*group)
    return list(
        session.scalars(
            select(LineageEvent).where(LineageEvent.id.in_(newest)).order_by(LineageEvent.id)
        )
    )


def recent_events(
    session: Session,
    tenant: str,
    actions: tuple[str, ...],
    limit: int,
    since: datetime | None = None,
    model_version: str | None = None,
    except_outcomes: tuple[str, ...] = (),
) -> list[LineageEvent]:
    """A tenant's newest lineage events of `actions`, newest first."""
    q = select(LineageEvent).where(LineageEvent.tenant == tenant, LineageEvent.action.in_(actions))
    if since is not None:
        q = q.where(LineageEvent.created_at >= as_utc(since))
    if model_version is not None:
        q = q.where(LineageEvent.model_version == model_version)
    if except_outcomes:
        q = q.where(LineageEvent.outcome.not_in(except_outcomes))
    return list(session.scalars(q.order_by(LineageEvent.id.desc()).limit(limit)))


def outcome_counts(session: Session, tenant: str, action: str) -> dict[str, int]:
    stmt = (
        select(LineageEvent.outcome, func.count())
        .where(LineageEvent.tenant == tenant, LineageEvent.action == action)
        .group_by(LineageEvent.outcome)
    )
    return {o: int(n) for o, n in session.execute(stmt)}


def all_aliases(session: Session) -> list[Alias]:
    return list(session.scalars(select(Alias).order_by(Alias.tenant, Alias.name)))


def recent_reports(session: Session, tenant: str, limit: int) -> list[EvalReport]:
    """A tenant's newest eval reports, newest first."""
    return list(
        session.scalars(
            select(EvalReport)
            .where(EvalReport.tenant == tenant)
            .order_by(EvalReport.created_at.desc(), EvalReport.id.desc())
            .limit(limit)
        )
    )
