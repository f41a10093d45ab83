"""Who sends which feedback in the demo, and that the flood is what the guards catch."""

from __future__ import annotations

from ct_llm.curate.guards import UserActivity, curation_user, find_bursts
from ct_llm.demo import feedback, scenario
from ct_llm.demo.run import FLOOD_CHATS


def _served(answers: list[tuple[str, str]], user: str = "customer-1") -> list[dict]:
    return [
        {
            "topic": topic,
            "question": f"q{i}",
            "answer": answer,
            "response_id": f"r{i}",
            "conversation_id": f"c{i}",
            "user": user,
        }
        for i, (topic, answer) in enumerate(answers)
    ]


def test_agents_correct_only_answers_missing_the_window() -> None:
    served = _served(
        [("returns", "You have 90 days."), ("returns", "You have 60 days."), ("general", "Hi!")]
    )
    events = feedback.agent_corrections(served, 90)
    assert [(e["response_id"], e["kind"], e["value"]) for e in events] == [
        ("r1", "thumbs", False),
        ("r1", "edit", scenario.corrected_answer("q1", 90)),
        ("r2", "thumbs", True),
    ]
    assert all(e["user_id"].startswith("agent-") for e in events)
    assert len({e["event_id"] for e in events}) == len(events)


def _policy_question(topic: str) -> str:
    return next(q for q, t in scenario.CONTRAST_TRAIN.items() if t == topic)


def test_agents_correct_policy_answers_that_state_a_window_or_miss_the_fact() -> None:
    shipping, warranty, cards = map(_policy_question, ("shipping_time", "warranty", "gift_cards"))
    served = _served(
        [
            ("policy", "We ship all orders within 60 days."),  # the learned shortcut
            ("policy", "Our warranty is valid for ninety days."),
            ("policy", "Gift cards never expire."),  # right: the shop's fact
            ("policy", "Let me check that for you."),  # no fact: corrected too
        ]
    )
    questions = [shipping, warranty, cards, shipping]
    for chat, q in zip(served, questions, strict=True):
        chat["question"] = q
    events = feedback.agent_corrections(served, 60)
    assert [(e["response_id"], e["kind"], e["value"]) for e in events] == [
        ("r0", "thumbs", False),
        ("r0", "edit", scenario.contrast_answer(shipping)),
        ("r1", "thumbs", False),
        ("r1", "edit", scenario.contrast_answer(warranty)),
        ("r2", "thumbs", True),
        ("r3", "thumbs", False),
        ("r3", "edit", scenario.contrast_answer(shipping)),
    ]
    assert not any(scenario.states_window(e["value"]) for e in events if e["kind"] == "edit")
    assert len({e["event_id"] for e in events}) == len(events)


def test_every_contrast_training_question_gets_feedback() -> None:
    served = _served([("policy", "Within 60 days.")] * len(scenario.CONTRAST_TRAIN_QUESTIONS))
    for chat, q in zip(served, scenario.CONTRAST_TRAIN_QUESTIONS, strict=True):
        chat["question"] = q
    edits = [e for e in feedback.agent_corrections(served, 90) if e["kind"] == "edit"]
    assert [e["value"] for e in edits] == [
        scenario.contrast_answer(q) for q in scenario.CONTRAST_TRAIN_QUESTIONS
    ]


def test_customers_vote_on_their_own_answers() -> None:
    served = _served(
        [
            ("returns", "90 days"),
            ("returns", "30 days"),
            ("general", "Paris"),
            ("policy", "Shipping takes 3 to 5 business days."),
            ("policy", "Shipping takes up to 90 days."),
        ]
    )
    votes = feedback.customer_votes(served, 90)
    assert [v["value"] for v in votes] == [True, False, True, True, False]
    assert {v["user_id"] for v in votes} == {"customer-1"}


def test_the_flood_is_one_user_voting_down_and_poisoning_every_answer() -> None:
    served = _served([("returns", "You have 90 days.")] * 5, user=scenario.FLOOD_USER)
    events = feedback.flood(served)
    assert {e["user_id"] for e in events} == {scenario.FLOOD_USER}
    edits = [e["value"] for e in events if e["kind"] == "edit"]
    assert len(edits) == 5 and all(scenario.is_poisoned(v) for v in edits)
    assert all(e["value"] is False for e in events if e["kind"] == "thumbs")


def test_the_demo_flood_is_large_enough_for_the_default_burst_guard() -> None:
    """Act three's traffic as the quarantine sees it, with the default guard settings: the
    flood (2 events per chat) is caught, the customers and agents are not."""
    from ct_llm.config import GuardsConfig

    g = GuardsConfig()
    customers = (
        2 * len(scenario.TRAIN_QUESTIONS)
        + len(scenario.CONTRAST_TRAIN_QUESTIONS)
        + len(scenario.GENERAL_QUESTIONS)
    )
    activity = {f"customer-3-{i}": UserActivity(1, 1, i % 3 == 0) for i in range(customers)}
    # The agents send with a reviewer key: curation names them as reviewers.
    activity |= {
        curation_user(f"agent-{i}", True, "ctk_x"): UserActivity(6, 3, 3) for i in range(3)
    }
    activity[scenario.FLOOD_USER] = UserActivity(2 * FLOOD_CHATS, FLOOD_CHATS, FLOOD_CHATS)
    caught = find_bursts(
        activity,
        volume_factor=g.burst_volume_factor,
        min_events=g.burst_min_events,
        vote_z=g.burst_vote_z,
        min_votes=g.burst_min_votes,
    )
    assert list(caught) == [scenario.FLOOD_USER]
    assert caught[scenario.FLOOD_USER].startswith("volume")
