"""Reading the votes that may decide a rollout (the definition is feedback/votes.py's): every
thumbs/rating event about a logged response of the given versions, received in a window, joined
with the response's logged end user. Streamed, so a week of votes is never held at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ct_llm.feedback.votes import (
    MAX_VOTES_PER_VOTER,
    VOTE_KINDS,
    StoredVote,
    VoteCounts,
    count_votes,
    voter_of,
)
from ct_llm.store.models import ChatResponse, FeedbackEvent

E, R = FeedbackEvent, ChatResponse


def stored_votes(
    session: Session,
    tenant: str,
    versions: Sequence[str],
    start: datetime,
    end: datetime | None = None,
) -> Iterator[StoredVote]:
    """The window [start, end) is on `received_at`, the server's clock, not the client's."""
    where = [
        E.tenant == tenant,
        E.kind.in_(VOTE_KINDS),
        E.model_version.in_(list(versions)),
        E.received_at >= start,
    ]
    if end is not None:
        where.append(E.received_at < end)
    stmt = (
        select(E.model_version, E.response_id, R.user_id, E.trusted, E.user_id, E.kind, E.value)
        # The inner join is the point: an event without a logged response is no vote here.
        .join(R, and_(R.id == E.response_id, R.tenant == E.tenant))
        .where(*where)
        .order_by(E.seq)
    )
    rows = session.execute(stmt.execution_options(yield_per=2000))
    for version, rid, logged_user, trusted, claimed, kind, value in rows:
        yield StoredVote(version, rid, voter_of(rid, logged_user, trusted, claimed), kind, value)


def vote_counts(
    session: Session,
    tenant: str,
    versions: Sequence[str],
    start: datetime,
    end: datetime | None = None,
    max_per_voter: int = MAX_VOTES_PER_VOTER,
) -> dict[str, VoteCounts]:
    """Each of `versions` -> its votes in the window (empty counts when it has none)."""
    counted = count_votes(stored_votes(session, tenant, versions, start, end), max_per_voter)
    return {v: counted.get(v, VoteCounts()) for v in versions}
