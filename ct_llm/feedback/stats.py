"""Feedback statistics for one tenant: counts by kind, and per model version the thumbs-down rate
and mean rating of the votes that may decide a rollout (feedback/votes.py: what the canary and
the drift trigger compare)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.feedback.vote_query import vote_counts
from ct_llm.feedback.votes import VOTE_KINDS
from ct_llm.store.models import FeedbackEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def summarize_votes(rows: list[tuple[str | None, str, Any]]) -> dict[str, dict[str, Any]]:
    """(model_version, kind, value) rows -> per-version thumbs and rating summary. Pure."""
    acc: dict[str, dict[str, Any]] = {}
    for version, kind, value in rows:
        s = acc.setdefault(
            version or "unknown", {"thumbs": 0, "thumbs_down": 0, "ratings": 0, "rating_sum": 0}
        )
        if kind == "thumbs" and isinstance(value, bool):
            s["thumbs"] += 1
            s["thumbs_down"] += value is False
        elif kind == "rating" and isinstance(value, int) and not isinstance(value, bool):
            s["ratings"] += 1
            s["rating_sum"] += value
    out: dict[str, dict[str, Any]] = {}
    for version, s in sorted(acc.items()):
        out[version] = {
            "thumbs": s["thumbs"],
            "thumbs_down": s["thumbs_down"],
            "thumbs_down_rate": s["thumbs_down"] / s["thumbs"] if s["thumbs"] else None,
            "ratings": s["ratings"],
            "mean_rating": s["rating_sum"] / s["ratings"] if s["ratings"] else None,
        }
    return out


def feedback_stats(session: Session, tenant: str) -> dict[str, Any]:
    by_kind = {
        kind: n
        for kind, n in session.execute(
            select(FeedbackEvent.kind, func.count())
            .where(FeedbackEvent.tenant == tenant)
            .group_by(FeedbackEvent.kind)
        )
    }
    versions = session.scalars(
        select(FeedbackEvent.model_version)
        .where(
            FeedbackEvent.tenant == tenant,
            FeedbackEvent.kind.in_(VOTE_KINDS),
            FeedbackEvent.response_id.is_not(None),
        )
        .distinct()
    ).all()
    counted = vote_counts(session, tenant, sorted(v for v in versions if v), _EPOCH)
    return {
        "tenant": tenant,
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "by_model_version": {v: c.to_dict() for v, c in counted.items()},
    }
