"""Curation never crashes on a stored row (issue 17): every malformed shape is written straight
into a real SQLite store, then a curation run must succeed, keep the good rows and count each
bad one under its reason in the manifest."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from ct_llm.curate.dataset import curate_dataset
from ct_llm.curate.stored_rows import answer_problem, messages_problem, value_problem
from ct_llm.feedback.context import context_hash
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent
from ct_llm.workspace import Workspace

GOOD = [{"role": "user", "content": "Capital of France?"}]

# Conversations the gateway or another writer may have logged: name -> (messages, reason).
BAD_MESSAGES: dict[str, tuple[Any, str]] = {
    "content_parts": (
        [{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}],
        "content_not_text",
    ),
    "content_object": ([{"role": "user", "content": {"text": "hi"}}], "content_not_text"),
    "content_null": ([{"role": "user", "content": None}], "content_not_text"),
    "content_number": ([{"role": "user", "content": 42}], "content_not_text"),
    "assistant_null": (
        [*GOOD, {"role": "assistant", "content": None}, {"role": "user", "content": "And?"}],
        "content_not_text",
    ),
    "missing_role": ([{"content": "hi"}], "message_without_role"),
    "role_number": ([{"role": 1, "content": "hi"}], "message_without_role"),
    "message_string": (["hi"], "message_not_an_object"),
    "messages_object": ({"role": "user", "content": "hi"}, "messages_not_a_list"),
    "messages_string": ("hi", "messages_not_a_list"),
    "messages_number": (7, "messages_not_a_list"),
}

# Events carrying their own exchange with a value their kind cannot have: (kind, value, reason).
BAD_VALUES: dict[str, tuple[str, Any, str]] = {
    "edit_number": ("edit", 5, "invalid_value"),
    "edit_object": ("edit", {"text": "You have 60 days."}, "invalid_value"),
    "edit_list": ("edit", ["You have", "60 days."], "invalid_value"),
    "thumbs_string": ("thumbs", "yes", "invalid_value"),
    "thumbs_null": ("thumbs", None, "invalid_value"),
    "rating_float": ("rating", 4.5, "invalid_value"),
    "rating_out_of_range": ("rating", 9, "invalid_value"),
    "rating_infinity": ("rating", float("inf"), "invalid_value"),
    "regenerate_object": ("regenerate", {"kept": "r1"}, "invalid_value"),
    "unknown_kind": ("bogus", True, "unknown_kind"),
}


def expected_drops() -> dict[str, int]:
    want: dict[str, int] = {}
    for _, reason in BAD_MESSAGES.values():
        want[reason] = want.get(reason, 0) + 1
    for _, _, reason in BAD_VALUES.values():
        want[reason] = want.get(reason, 0) + 1
    want["answer_not_text"] = 1
    want["unreadable_json"] = 1
    return want


def seed(ws: Workspace) -> None:
    with session_scope(ws.database_url) as s:
        # Good: two answers to one question, one voted up and one down -> a thumbs pair.
        for i, (answer, up) in enumerate([("Paris.", True), ("Lyon.", False)]):
            s.add(
                ChatResponse(
                    id=f"good{i}",
                    tenant="t",
                    conversation_id="c-good",
                    context_hash=context_hash(GOOD),
                    messages=GOOD,
                    response=answer,
                    model_version="base",
                    latency_ms=1.0,
                )
            )
            s.add(vote(f"good{i}", up, context_hash(GOOD), user=f"u{i}"))
        # Bad conversations, each logged by "the gateway" and voted on.
        for name, (messages, _) in BAD_MESSAGES.items():
            s.add(
                ChatResponse(
                    id=name,
                    tenant="t",
                    conversation_id=f"c-{name}",
                    context_hash=f"ctx-{name}",
                    messages=messages,
                    response="An answer.",
                    model_version="base",
                    latency_ms=1.0,
                )
            )
            s.add(vote(name, True, f"ctx-{name}", user=f"u-{name}"))
        # An answer that is not text: SQLite keeps bytes as a BLOB in a text column.
        s.add(free_event("answer_bytes", "thumbs", True, GOOD, b"Paris.", "ctx-answer-bytes"))
        for name, (kind, value, _) in BAD_VALUES.items():
            question = [{"role": "user", "content": f"Question {name}?"}]
            s.add(free_event(name, kind, value, question, "An answer.", f"ctx-{name}"))
        s.add(free_event("json_unreadable", "thumbs", True, GOOD, "Paris.", "ctx-unreadable"))
    with session_scope(ws.database_url) as s:
        # What no JSON encoder writes, but a hand-run script might.
        s.execute(
            text("UPDATE feedback_events SET messages = '[{not json' WHERE event_id = :e"),
            {"e": "json_unreadable"},
        )


def free_event(
    event_id: str, kind: str, value: Any, messages: Any, response: Any, ctx: str
) -> FeedbackEvent:
    """An event that carries its own conversation and answer (no logged response)."""
    return FeedbackEvent(
        tenant="t",
        event_id=event_id,
        payload_hash="x",
        kind=kind,
        value=value,
        messages=messages,
        response=response,
        context_hash=ctx,
    )


def vote(response_id: str, up: bool, ctx: str, user: str) -> FeedbackEvent:
    return FeedbackEvent(
        tenant="t",
        event_id=f"vote-{response_id}",
        payload_hash="x",
        kind="thumbs",
        value=up,
        response_id=response_id,
        context_hash=ctx,
        user_id=user,
    )


@pytest.fixture
def ws(empty_workspace: Workspace) -> Workspace:
    # Few users and rows here: the per-user cap would trim the good pair.
    empty_workspace.config.curate.guards.max_user_share = 1.0
    return empty_workspace


def test_curation_drops_every_malformed_row_with_its_reason(ws: Workspace) -> None:
    seed(ws)
    curate_dataset(ws, "t", dry_run=True)  # a dry run, then the real one: neither may crash
    manifest = curate_dataset(ws, "t").manifest
    counts = manifest["counts"]
    assert sum(n for kind in counts.values() for n in kind.values()) == 1  # the thumbs pair
    assert counts["dpo"]["train"] + counts["dpo"]["test"] == 1
    drops = manifest["drops"]
    for reason, n in expected_drops().items():
        assert drops.get(reason) == n, (reason, drops)


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_messages_problem(name: str) -> None:
    messages, reason = BAD_MESSAGES[name]
    assert messages_problem(messages) == reason
    assert messages_problem(GOOD) is None


def test_answer_and_value_problems() -> None:
    assert answer_problem("Paris.") is None
    assert answer_problem(None) == answer_problem(b"x") == "answer_not_text"
    for kind, value, reason in BAD_VALUES.values():
        assert value_problem(kind, value) == reason, (kind, value)
    good = [("thumbs", False), ("rating", 1), ("edit", ""), ("regenerate", None), ("comment", 3)]
    for kind, value in good:
        assert value_problem(kind, value) is None, (kind, value)
    assert value_problem("rating", True) == "invalid_value"  # a bool is no rating
