from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ct_llm.feedback import ingest
from ct_llm.feedback.ingest import ingest_events
from ct_llm.feedback.stats import feedback_stats, summarize_votes
from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace


def thumbs(event_id: str, value: bool, response_id: str = "r1", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "thumbs",
        "value": value,
        "response_id": response_id,
        **kw,
    }


def rows(session: Session, tenant: str) -> list[FeedbackEvent]:
    return list(session.scalars(select(FeedbackEvent).where(FeedbackEvent.tenant == tenant)))


def test_partial_batch_keeps_good_events(session: Session, add_response: Callable) -> None:
    add_response("acme", "r1", model_version="acme-v1")
    items = [
        thumbs("e1", True),
        {"event_id": "e2", "kind": "rating", "value": 9, "response_id": "r1"},
        "junk",
        thumbs("e3", False),
    ]
    res = ingest_events(session, "acme", items)
    assert (res.accepted, res.duplicates) == (2, 0)
    assert [(r["index"], r["event_id"]) for r in res.rejected] == [(1, "e2"), (2, None)]
    assert "1 to 5" in res.rejected[0]["error"]
    stored = {r.event_id: r for r in rows(session, "acme")}
    assert set(stored) == {"e1", "e3"}
    # Denormalised from the joined response so curation and stats need no join.
    assert stored["e3"].model_version == "acme-v1" and stored["e3"].conversation_id == "conv-1"
    assert res.thumbs_down_by_version == {"acme-v1": 1}


def test_duplicates_are_stored_once_and_conflicts_rejected(
    session: Session, add_response: Callable
) -> None:
    add_response("acme", "r1")
    assert ingest_events(session, "acme", [thumbs("e1", True)]).accepted == 1
    again = ingest_events(session, "acme", [thumbs("e1", True), thumbs("e1", False)])
    assert (again.accepted, again.duplicates) == (0, 1)
    assert again.rejected[0]["index"] == 1 and "conflict" in again.rejected[0]["error"]
    assert len(rows(session, "acme")) == 1 and rows(session, "acme")[0].value is True


def test_within_batch_duplicate_and_conflict(session: Session, add_response: Callable) -> None:
    add_response("acme", "r1")
    res = ingest_events(
        session, "acme", [thumbs("e1", True), thumbs("e1", True), thumbs("e1", False)]
    )
    assert (res.accepted, res.duplicates) == (1, 1)
    assert "earlier in this batch" in res.rejected[0]["error"]
    assert len(rows(session, "acme")) == 1


def test_tenants_are_isolated(session: Session, add_response: Callable) -> None:
    add_response("globex", "r-globex")
    res = ingest_events(session, "acme", [thumbs("e1", False, response_id="r-globex")])
    assert res.accepted == 0 and "unknown response_id" in res.rejected[0]["error"]
    # The same event_id is independent per tenant.
    add_response("acme", "r1")
    assert ingest_events(session, "acme", [thumbs("e1", True)]).accepted == 1
    assert ingest_events(session, "globex", [thumbs("e1", False, "r-globex")]).accepted == 1
    assert feedback_stats(session, "acme")["by_kind"] == {"thumbs": 1}


def test_full_exchange_event_needs_no_response(session: Session) -> None:
    res = ingest_events(
        session,
        "acme",
        [
            {
                "event_id": "x",
                "kind": "edit",
                "value": "Better answer.",
                "model_version": "m1",
                "messages": [{"role": "user", "content": "q"}],
                "response": "bad answer",
            }
        ],
    )
    assert res.accepted == 1
    row = rows(session, "acme")[0]
    assert row.messages == [{"role": "user", "content": "q"}] and row.response == "bad answer"


def test_stats_by_model_version(session: Session, add_response: Callable) -> None:
    for rid in ("r1", "r1b", "r1c"):
        add_response("acme", rid, model_version="v1")
    add_response("acme", "r2", model_version="v2")
    ingest_events(
        session,
        "acme",
        [
            thumbs("a", False),
            thumbs("b", True, "r1b"),
            thumbs("c", True, "r2"),
            thumbs("d", False, "r1c"),
            {"event_id": "e", "kind": "rating", "value": 2, "response_id": "r1"},
            {"event_id": "f", "kind": "rating", "value": 5, "response_id": "r1b"},
            {"event_id": "g", "kind": "comment", "value": "meh", "response_id": "r2"},
        ],
    )
    s = feedback_stats(session, "acme")
    assert s["total"] == 7 and s["by_kind"] == {"thumbs": 4, "rating": 2, "comment": 1}
    v1 = s["by_model_version"]["v1"]
    assert v1["thumbs_down_rate"] == round(2 / 3, 6) and v1["mean_rating"] == 3.5
    assert s["by_model_version"]["v2"]["thumbs_down_rate"] == 0.0
    assert s["by_model_version"]["v2"]["mean_rating"] is None


def test_stats_count_the_votes_that_decide_rollouts(
    session: Session, add_response: Callable
) -> None:
    """One vote per voter and answer (the latest), the logged user as the voter whatever the
    body says, free-standing votes left out (feedback/votes.py)."""
    add_response("acme", "r1", model_version="v1", user_id="alice")
    add_response("acme", "r2", model_version="v1")  # no logged user: the answer votes once
    free = {"messages": [{"role": "user", "content": "q"}], "response": "a"}
    ingest_events(
        session,
        "acme",
        [
            thumbs("a1", True),
            thumbs("a2", False),  # alice changed her mind: one vote, down
            thumbs("b1", True, "r2", user_id="u1"),
            thumbs("b2", True, "r2", user_id="u2"),  # invented users on one answer: one vote
            {"event_id": "f", "kind": "thumbs", "value": False, "model_version": "v1", **free},
        ],
    )
    v1 = feedback_stats(session, "acme")["by_model_version"]["v1"]
    assert (v1["thumbs"], v1["thumbs_down"]) == (2, 1)


def test_summarize_votes_ignores_malformed_values() -> None:
    out = summarize_votes([(None, "thumbs", "no"), (None, "rating", True), (None, "thumbs", False)])
    assert out == {
        "unknown": {
            "thumbs": 1,
            "thumbs_down": 1,
            "thumbs_down_rate": 1.0,
            "ratings": 0,
            "mean_rating": None,
        }
    }


def test_concurrent_insert_of_same_event_is_reclassified(
    ws: Workspace, add_response: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request stored e1 after our read: the unique constraint fires and the retry
    counts it as a duplicate instead of failing the whole batch."""
    add_response("acme", "r1")
    with session_scope(ws.database_url) as s:
        ingest_events(s, "acme", [thumbs("e1", True)])
    real = ingest._known_hashes
    calls: list[int] = []

    def stale_first_read(*args: Any) -> dict[str, str]:
        calls.append(1)
        return {} if len(calls) == 1 else real(*args)

    monkeypatch.setattr(ingest, "_known_hashes", stale_first_read)
    with session_scope(ws.database_url) as s:
        res = ingest_events(s, "acme", [thumbs("e1", True), thumbs("e2", True)])
    assert (res.accepted, res.duplicates, len(calls)) == (1, 1, 2)
    with session_scope(ws.database_url) as s:
        assert sorted(r.event_id for r in rows(s, "acme")) == ["e1", "e2"]
