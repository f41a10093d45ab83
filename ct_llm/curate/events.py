"""Reading a tenant's feedback for curation: a window of events, per-user activity, and the
events streamed grouped by prompt context.

The stream walks the `(tenant, context_hash, seq)` index, so the database hands over one context
after another in event order without a sort, and curation holds one group at a time, however many
events there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, Text, and_, case, cast, func, or_, select

from ct_llm.curate.guards import UserActivity, curation_user
from ct_llm.curate.rules import FeedbackRecord
from ct_llm.curate.stored_rows import answer_problem, messages_problem, value_problem
from ct_llm.store.models import ChatResponse, FeedbackEvent

E = FeedbackEvent.__table__.c
R = ChatResponse.__table__.c


@dataclass
class Window:
    """Events with after_seq < seq <= upto_seq."""

    after_seq: int
    upto_seq: int


@dataclass
class StreamStats:
    unjoined: int = 0
    """Events whose answer is unknown (no messages and no stored response)."""
    skipped_users: dict[str, int] = field(default_factory=dict)
    """Events left out per quarantined user."""
    malformed: dict[str, int] = field(default_factory=dict)
    """Events left out because their stored row cannot be used, per reason (stored_rows.py)."""

    def drop_malformed(self, reason: str) -> None:
        self.malformed[reason] = self.malformed.get(reason, 0) + 1


@dataclass(frozen=True)
class WindowSummary:
    events: int
    first_seq: int | None
    last_seq: int | None


def _in_window(tenant: str, w: Window):  # type: ignore[no-untyped-def]
    return and_(E.tenant == tenant, E.seq > w.after_seq, E.seq <= w.upto_seq)


_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _value(raw: Any) -> Any:
    """An event's JSON value. Votes and ratings, nearly every event, skip the JSON parser."""
    if raw is None:
        return None
    if raw in _LITERALS:
        return _LITERALS[raw]
    if raw.isdigit():
        return int(raw)
    return json.loads(raw)


def _messages(raw: str) -> tuple[Any, str | None]:
    """A context's stored messages, decoded, and why they cannot be used (None: they can)."""
    try:
        messages = json.loads(raw)
    except ValueError:
        return None, "unreadable_json"
    if not messages:
        return messages, None  # no conversation: counted as unjoined
    return messages, messages_problem(messages)


def max_seq(conn: Connection, tenant: str) -> int:
    return conn.scalar(select(func.max(E.seq)).where(E.tenant == tenant)) or 0


def summarise(conn: Connection, tenant: str, w: Window) -> WindowSummary:
    n, first, last = conn.execute(
        select(func.count(), func.min(E.seq), func.max(E.seq)).where(_in_window(tenant, w))
    ).one()
    return WindowSummary(int(n), first, last)


def user_activity(conn: Connection, tenant: str, w: Window) -> dict[str, UserActivity]:
    """Per identified user (guards.curation_user: reviewers apart): events, thumbs, thumbs down.
    One aggregate query."""
    is_thumbs = E.kind == "thumbs"
    # JSON `false` reads back as the text 'false' on SQLite and on PostgreSQL.
    is_down = and_(is_thumbs, cast(E.value, String) == "false")
    rows = conn.execute(
        select(
            E.user_id,
            E.trusted,
            E.key_prefix,
            func.count(),
            func.sum(case((is_thumbs, 1), else_=0)),
            func.sum(case((is_down, 1), else_=0)),
        )
        .where(_in_window(tenant, w), or_(E.user_id.is_not(None), E.trusted))
        .group_by(E.user_id, E.trusted, E.key_prefix)
    )
    out: dict[str, UserActivity] = {}
    for user_id, trusted, key_prefix, n, t, d in rows:
        user = curation_user(user_id, bool(trusted), key_prefix)
        if user is None:
            continue
        seen = out.get(user, UserActivity(0))
        out[user] = UserActivity(
            seen.events + int(n), seen.thumbs + int(t or 0), seen.thumbs_down + int(d or 0)
        )
    return out


def stream_groups(
    conn: Connection,
    tenant: str,
    w: Window,
    skip_users: set[str],
    stats: StreamStats,
    batch: int = 2000,
) -> Iterator[list[FeedbackRecord]]:
    """The window's events joined with their answers, one prompt context at a time."""
    stmt = (
        select(
            E.seq,
            E.event_id,
            E.kind,
            cast(E.value, Text),
            E.user_id,
            E.trusted,
            E.key_prefix,
            E.conversation_id,
            E.response_id,
            # Raw JSON text: every event of a context has the same messages, so they are decoded
            # once per context instead of once per event.
            cast(E.messages, Text),
            E.response,
            E.context_hash,
            cast(R.messages, Text),
            R.response,
            R.conversation_id,
        )
        .select_from(
            FeedbackEvent.__table__.outerjoin(
                ChatResponse.__table__, and_(R.id == E.response_id, R.tenant == tenant)
            )
        )
        .where(_in_window(tenant, w))
        .order_by(E.context_hash, E.seq)
    )
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(stmt)
    group: list[FeedbackRecord] = []
    key: str | None = None
    decoded: dict[Any, Any] = {}
    for row in result:
        (seq, event_id, kind, value, user_id, trusted, key_prefix) = row[:7]
        (conv, rid, msgs, resp, ctx, r_msgs, r_resp, r_conv) = row[7:]
        user = curation_user(user_id, bool(trusted), key_prefix)
        if user is not None and user in skip_users:
            stats.skipped_users[user] = stats.skipped_users.get(user, 0) + 1
            continue
        # A JSON column holding None may read back as SQL NULL or as the JSON text 'null'.
        raw = msgs if msgs is not None and msgs != "null" else r_msgs
        response = resp if resp is not None else r_resp
        if raw is None or response is None:
            stats.unjoined += 1
            continue
        if group and (ctx != key or ctx is None):
            # Rows from before the context key existed have none: each is its own group.
            yield group
            group = []
            decoded.clear()
        key = ctx
        decoded_messages = decoded.get(raw)
        if decoded_messages is None:
            decoded_messages = decoded[raw] = _messages(raw)
        messages, problem = decoded_messages
        if problem is None and not messages:
            stats.unjoined += 1
            continue
        try:
            parsed_value = _value(value)
        except ValueError:
            parsed_value, problem = None, problem or "unreadable_json"
        problem = problem or answer_problem(response) or value_problem(kind, parsed_value)
        if problem is not None:
            stats.drop_malformed(problem)
            continue
        group.append(
            FeedbackRecord(
                seq=seq,
                event_id=event_id,
                kind=kind,
                value=parsed_value,
                messages=messages,
                response=response,
                conversation_id=conv or r_conv,
                response_id=rid,
                user_id=user,
            )
        )
    if group:
        yield group
