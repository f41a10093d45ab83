"""What the triggers and the retry policy read from the store: new feedback, the production
model's votes per window, past cycles, the canary, work a failed cycle left behind.

Every read is an aggregate or a bounded query, so a check costs the same after a year of
hourly ticks: votes are summed in SQL (count, sum, sum of squares) rather than loaded, and
only the last `HISTORY` cycles that ran are read back.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from ct_llm.curate.dataset import latest_dataset
from ct_llm.feedback.vote_query import vote_counts as query_votes
from ct_llm.loop.decision import CycleRecord
from ct_llm.loop.drift import VoteCounts
from ct_llm.registry import registry
from ct_llm.store.models import ChatResponse, FeedbackEvent, LineageEvent, ModelVersion

USABLE_KINDS = ("edit", "thumbs")
# Consecutive failures beyond this many change nothing (the backoff is at its cap long before).
HISTORY = 50
# Outcomes of cycles that trained: a verdict was reached, or a stage after training failed.
TRAINED_OUTCOMES = ("deployed", "rejected", "failed:eval", "failed:gate", "failed:deploy")


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything ct-llm stores is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def new_usable_events(session: Session, tenant: str) -> int:
    """Feedback that curation can turn into rows, received since the last dataset version."""
    last = latest_dataset(session, tenant)
    since = last.max_event_seq if last else 0
    return (
        session.scalar(
            select(func.count())
            .select_from(FeedbackEvent)
            .where(
                FeedbackEvent.tenant == tenant,
                FeedbackEvent.seq > since,
                FeedbackEvent.kind.in_(USABLE_KINDS),
            )
        )
        or 0
    )


def production_model(session: Session, tenant: str, base_model: str) -> tuple[str, datetime | None]:
    """(version users get, when it became production); the base model's name and None before
    the first promotion."""
    alias = registry.get_alias(session, tenant, registry.PRODUCTION)
    if alias is None:
        return base_model, None
    return alias.model_version, utc(alias.updated_at)


def canary_version(session: Session, tenant: str) -> str | None:
    alias = registry.get_alias(session, tenant, registry.CANARY)
    return alias.model_version if alias else None


def vote_counts(
    session: Session, tenant: str, model_version: str, start: datetime, end: datetime
) -> VoteCounts:
    """The votes `model_version` received in [start, end), as feedback/votes.py defines a vote
    that may decide a rollout (the drift trigger is one)."""
    return query_votes(session, tenant, [model_version], start, end)[model_version]


def cycle_records(session: Session, tenant: str) -> list[tuple[CycleRecord, str | None]]:
    """The last `HISTORY` cycles that ran (declined checks left out), newest first, each with
    the candidate it produced, if any."""
    rows = session.execute(
        select(
            LineageEvent.created_at,
            LineageEvent.outcome,
            LineageEvent.details,
            LineageEvent.model_version,
        )
        .where(
            LineageEvent.tenant == tenant,
            LineageEvent.action == "cycle",
            LineageEvent.outcome != "skipped",
        )
        .order_by(LineageEvent.id.desc())
        .limit(HISTORY)
    ).all()
    out = []
    for at, outcome, details, version in rows:
        trained = bool((details or {}).get("trained", outcome in TRAINED_OUTCOMES))
        out.append((CycleRecord(utc(at), outcome, trained), version))
    return out


def first_check_at(session: Session, tenant: str) -> datetime | None:
    """When a cycle was first recorded for the tenant (declined checks included)."""
    at = session.scalar(
        select(func.min(LineageEvent.created_at)).where(
            LineageEvent.tenant == tenant, LineageEvent.action == "cycle"
        )
    )
    return utc(at) if at is not None else None


def untrained_dataset(session: Session, tenant: str) -> str | None:
    """The latest dataset version if no model was trained on it: a cycle curated it and failed
    before training finished (or someone ran `ct-llm curate` alone)."""
    ds = latest_dataset(session, tenant)
    if ds is None:
        return None
    trained = session.scalar(
        select(exists().where(ModelVersion.tenant == tenant, ModelVersion.dataset_version == ds.id))
    )
    return None if trained else ds.id


def version_state(session: Session, tenant: str, version: str) -> str | None:
    mv = session.get(ModelVersion, version)
    return mv.state if mv is not None and mv.tenant == tenant else None


def recent_prompts(
    session: Session, tenant: str, start: datetime, end: datetime, limit: int
) -> list[str]:
    """The last user message of the newest `limit` answers logged in [start, end)."""
    rows = session.scalars(
        select(ChatResponse.messages)
        .where(
            ChatResponse.tenant == tenant,
            ChatResponse.created_at >= start,
            ChatResponse.created_at < end,
        )
        .order_by(ChatResponse.created_at.desc())
        .limit(limit)
    )
    out = []
    for messages in rows:
        user = [
            m.get("content")
            for m in messages or []
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        if user and isinstance(user[-1], str) and user[-1].strip():
            out.append(user[-1])
    return out
