"""Who says what in the demo: the feedback events each simulated group sends. Pure functions.

`served` items are what `traffic.chat` returns: {topic, question, answer, response_id,
conversation_id, user}. Every event id is derived from the response id, so sending a batch
twice is deduplicated by the API, as with a real client that retries.
"""

from __future__ import annotations

from typing import Any

from ct_llm.demo import scenario

Served = list[dict[str, Any]]


def _event(chat: dict[str, Any], user: str, kind: str, value: Any) -> dict[str, Any]:
    return {
        "event_id": f"{chat['response_id']}-{kind}-{user}",
        "response_id": chat["response_id"],
        "conversation_id": chat["conversation_id"],
        "user_id": user,
        "kind": kind,
        "value": value,
    }


def _policy_answer_ok(chat: dict[str, Any]) -> bool:
    """An answer about another policy (topic "policy", a CONTRAST_TRAIN question) is right when
    it gives the shop's fact and does not state a return window."""
    return scenario.states_fact(scenario.policy_topic(chat["question"]), chat["answer"])


def agent_corrections(served: Served, days: int) -> list[dict[str, Any]]:
    """Support agents (three of them, trusted reviewers) mark every returns answer that does
    not state the `days`-day window as bad and send the corrected answer. Answers about the
    shop's other policies (topic "policy") that state a return window or miss the fact get a
    thumbs down and the fact (`scenario.contrast_answer`), right ones a thumbs up: so training
    learns where the window applies, not just the number. Good general answers get a thumbs up."""
    events = []
    for i, chat in enumerate(served):
        agent = f"agent-{i % 3}"
        if chat["topic"] == "returns":
            if not scenario.states_policy(chat["answer"], days):
                events.append(_event(chat, agent, "thumbs", False))
                events.append(
                    _event(chat, agent, "edit", scenario.corrected_answer(chat["question"], days))
                )
        elif chat["topic"] == "policy":
            ok = _policy_answer_ok(chat)
            events.append(_event(chat, agent, "thumbs", ok))
            if not ok:
                events.append(
                    _event(chat, agent, "edit", scenario.contrast_answer(chat["question"]))
                )
        else:
            events.append(_event(chat, agent, "thumbs", True))
    return events


def _customer_likes(chat: dict[str, Any], days: int) -> bool:
    if chat["topic"] == "returns":
        return scenario.states_policy(chat["answer"], days)
    if chat["topic"] == "policy":
        # A customer asking about shipping notices "within 60 days" is wrong, not the fact.
        return not scenario.states_window(chat["answer"])
    return True


def customer_votes(served: Served, days: int) -> list[dict[str, Any]]:
    """End users vote on their own answers: up when a returns answer states the window, when an
    other-policy answer states no return window, or for any general answer; down otherwise. One
    vote per customer."""
    return [_event(chat, chat["user"], "thumbs", _customer_likes(chat, days)) for chat in served]


def flood(served: Served) -> list[dict[str, Any]]:
    """The flooding end user: every answer voted down and "corrected" to "no returns"."""
    events = []
    for n, chat in enumerate(served):
        events.append(_event(chat, scenario.FLOOD_USER, "thumbs", False))
        events.append(_event(chat, scenario.FLOOD_USER, "edit", scenario.poison_answer(n)))
    return events
