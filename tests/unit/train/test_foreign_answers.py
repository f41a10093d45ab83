"""Which taught answer each anchor watches (`anchor_negative_weight`). Pure."""

from __future__ import annotations

from ct_llm.train.replay import anchor_pair, with_foreign_answers


def pair(question: str, good: str, bad: str) -> dict:
    user = [{"role": "user", "content": question}]
    return {
        "prompt": user,
        "chosen": [{"role": "assistant", "content": good}],
        "rejected": [{"role": "assistant", "content": bad}],
    }


PAIRS = [
    pair("Return window?", "60 days.", "30 days."),
    pair("How long to return?", "60 days.", "2 weeks."),  # the same taught answer: dealt once
    pair("Warranty?", "Two years.", "60 days."),
]


def test_every_taught_answer_is_dealt_and_an_anchor_never_watches_its_own_answer() -> None:
    anchors = [anchor_pair([{"role": "user", "content": f"q{i}"}], f"a{i}") for i in range(4)]
    anchors.append(anchor_pair([{"role": "user", "content": "Warranty length?"}], "Two years."))
    out = with_foreign_answers(anchors, PAIRS, seed=0)
    dealt = [a["foreign"][0]["content"] for a in out]
    assert set(dealt[:4]) == {"60 days.", "Two years."}
    assert dealt[4] == "60 days."  # "Two years." is its own answer
    assert all(a["chosen"] == a["rejected"] for a in out)  # still anchors
    assert with_foreign_answers(anchors, PAIRS, seed=0) == out  # seeded


def test_nothing_taught_leaves_anchors_as_they_are() -> None:
    anchors = [anchor_pair([{"role": "user", "content": "q"}], "a")]
    assert with_foreign_answers(anchors, [], seed=0) == anchors
    only_itself = [pair("q2", "a", "b")]
    assert with_foreign_answers(anchors, only_itself, seed=0) == anchors
