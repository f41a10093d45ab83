"""Reading the votes that may decide a rollout (the definition is feedback/votes.py's): every
thumbs/rating event about a logged response of the given versions, received in a window, joined
with the response's logged end user. Rows are streamed from the database; counting keeps one
entry per voter, answer and kind (the latest vote), not the rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

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

UNKNOWN_VERSION = "unknown"
"""Events that name no model version are counted under this name (as feedback/stats.py does)."""

E, R = FeedbackEvent, ChatResponse


def _vote_rows(
    session: Session,
    tenant: str,
    versions: Sequence[str] | None,
    start: datetime,
    end: datetime | None,
    by_time: bool = False,
) -> Iterator[tuple[datetime, StoredVote]]:
    """(received_at, vote) in arrival order (`by_time`: in received_at order); `versions` None:
    every version."""
    where = [E.tenant == tenant, E.kind.in_(VOTE_KINDS), E.received_at >= start]
    if versions is not None:
        where.append(E.model_version.in_(list(versions)))
    if end is not None:
        where.append(E.received_at < end)
    stmt = (
        select(
            E.received_at,
            E.model_version,
            E.response_id,
            R.user_id,
            E.trusted,
            E.user_id,
            E.kind,
            E.value,
        )
        # The inner join is the point: an event without a logged response is no vote here.
        .join(R, and_(R.id == E.response_id, R.tenant == E.tenant))
        .where(*where)
        .order_by(*((E.received_at, E.seq) if by_time else (E.seq,)))
    )
    rows = session.execute(stmt.execution_options(yield_per=2000))
    for at, version, rid, logged_user, trusted, claimed, kind, value in rows:
        voter = voter_of(rid, logged_user, trusted, claimed)
        yield at, StoredVote(version or UNKNOWN_VERSION, rid, voter, kind, value)


def stored_votes(
    session: Session,
    tenant: str,
    versions: Sequence[str],
    start: datetime,
    end: datetime | None = None,
) -> Iterator[StoredVote]:
    """The window [start, end) is on `received_at`, the server's clock, not the client's."""
    return (vote for _, vote in _vote_rows(session, tenant, versions, start, end))


def daily_vote_counts(
    session: Session, tenant: str, since: datetime, max_per_voter: int = MAX_VOTES_PER_VOTER
) -> dict[tuple[str, str], VoteCounts]:
    """(UTC day, version) -> the votes of that day, each day counted as its own window (the
    status page's quality chart). Days follow `received_at`, as the canary's windows do; the
    rows come in time order, so one day's votes are held at a time."""
    out: dict[tuple[str, str], VoteCounts] = {}
    day_votes: list[StoredVote] = []
    current: str | None = None

    def close_day() -> None:
        if current is not None:
            for version, counts in count_votes(day_votes, max_per_voter).items():
                out[(current, version)] = counts

    for at, vote in _vote_rows(session, tenant, None, since, None, by_time=True):
        day = (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        iso = day.date().isoformat()
        if iso != current:
            close_day()
            current, day_votes = iso, []
        day_votes.append(vote)
    close_day()
    return out


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
