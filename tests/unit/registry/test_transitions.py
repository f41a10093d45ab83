"""Registry states: the allowed moves pass, every other move is refused and says why."""

from __future__ import annotations

import pytest

from ct_llm.errors import RegistryError
from ct_llm.registry import registry
from ct_llm.registry.registry import STATES, TRANSITIONS, check_transition
from ct_llm.store.db import session_scope

LIFECYCLE = ["candidate", "approved", "canary", "production", "retired", "production"]


def test_the_lifecycle_and_its_undo_paths_are_allowed() -> None:
    for current, nxt in zip(LIFECYCLE, LIFECYCLE[1:], strict=False):
        check_transition(current, nxt)
    check_transition("candidate", "rejected")  # the gate said no
    check_transition("canary", "rejected")  # a canary rolled back
    check_transition("production", "rejected")  # production rolled back
    check_transition("rejected", "approved")  # re-gated with a new report
    check_transition("approved", "approved")  # idempotent


@pytest.mark.parametrize(
    ("current", "state"),
    [
        ("candidate", "production"),  # never without the gate
        ("candidate", "canary"),
        ("rejected", "canary"),
        ("rejected", "production"),
        ("retired", "canary"),
        ("canary", "candidate"),
    ],
)
def test_other_moves_are_refused(current: str, state: str) -> None:
    with pytest.raises(RegistryError, match=f"a '{current}' version cannot become '{state}'"):
        check_transition(current, state)


def test_every_state_has_a_row_and_moves_only_to_known_states() -> None:
    assert set(TRANSITIONS) == set(STATES)
    assert all(targets <= set(STATES) for targets in TRANSITIONS.values())
    with pytest.raises(ValueError, match="unknown state"):
        check_transition("candidate", "shipped")


def test_set_state_refuses_and_leaves_the_version_as_it_was(empty_workspace) -> None:
    url = empty_workspace.database_url
    with session_scope(url) as session:
        registry.register_adapter(session, "t", "t-a-v1", 1, "/x", None, None, {})
    with pytest.raises(RegistryError), session_scope(url) as session:
        registry.set_state(session, "t", "t-a-v1", "production")
    with session_scope(url) as session:
        assert registry.get_version(session, "t", "t-a-v1").state == "candidate"
        registry.set_state(session, "t", "t-a-v1", "approved")
    with session_scope(url) as session:
        assert registry.get_version(session, "t", "t-a-v1").state == "approved"


def test_every_move_is_recorded_with_time_actor_and_reason(empty_workspace) -> None:
    url = empty_workspace.database_url
    with session_scope(url) as session:
        registry.register_adapter(session, "t", "t-a-v1", 1, "/x", None, None, {})
        registry.set_state(session, "t", "t-a-v1", "approved", actor="gate", reason="all passed")
        registry.set_state(session, "t", "t-a-v1", "approved", actor="gate")  # no move, no record
        registry.set_state(session, "t", "t-a-v1", "canary", actor="alice", reason="canary 10%")
    with session_scope(url) as session:
        moves = [e for e in registry.history(session, "t", "t-a-v1") if e.action == "transition"]
        assert [
            (e.details["from"], e.details["to"], e.actor, e.details["reason"]) for e in moves
        ] == [
            ("candidate", "approved", "gate", "all passed"),
            ("approved", "canary", "alice", "canary 10%"),
        ]
        assert all(e.created_at is not None for e in moves)
