from ct_llm.curate.pairing import (
    CurationStats,
    FeedbackRecord,
    build_preference_pairs,
    build_unpaired_examples,
)
from ct_llm.curate.split import split_by_conversation

PROMPT = [
    {"role": "system", "content": "You are a shop bot."},
    {"role": "user", "content": "How long do I have to return a jacket?"},
]


def rec(seq: int, kind: str, value, response: str = "30 days.", **kw) -> FeedbackRecord:
    return FeedbackRecord(
        seq=seq,
        event_id=f"e{seq}",
        kind=kind,
        value=value,
        messages=PROMPT,
        response=response,
        **kw,
    )


def test_edit_becomes_dpo_pair_in_trl_conversational_format():
    pairs = build_preference_pairs([rec(1, "edit", "You have 60 days.", conversation_id="c1")])
    assert len(pairs) == 1
    p = pairs[0]
    assert p["prompt"] == PROMPT
    assert p["chosen"] == [{"role": "assistant", "content": "You have 60 days."}]
    assert p["rejected"] == [{"role": "assistant", "content": "30 days."}]
    assert p["conversation_id"] == "c1"


def test_edit_identical_empty_or_without_user_turn_is_dropped_with_reason():
    stats = CurationStats()
    no_user = FeedbackRecord(
        seq=3,
        event_id="e3",
        kind="edit",
        value="x",
        messages=[{"role": "system", "content": "s"}],
        response="y",
    )
    pairs = build_preference_pairs(
        [rec(1, "edit", "30 days."), rec(2, "edit", "  "), no_user], stats
    )
    assert pairs == []
    assert stats.drops == {
        "edit_identical_to_response": 1,
        "edit_empty": 1,
        "edit_without_user_turn": 1,
    }


def test_thumbs_become_kto_examples_and_the_latest_vote_wins():
    stats = CurationStats()
    rows = build_unpaired_examples(
        [
            rec(1, "thumbs", True, response_id="r1"),
            rec(2, "thumbs", False, response_id="r1"),
            rec(3, "thumbs", True, response_id="r2"),
            rec(4, "rating", 5, response_id="r3"),
        ],
        stats,
    )
    by_label = sorted(r["label"] for r in rows)
    assert by_label == [False, True]
    assert stats.drops == {"thumbs_superseded_by_later_vote": 1}
    assert rows[0]["completion"] == [{"role": "assistant", "content": "30 days."}]


def test_non_bool_thumbs_dropped():
    stats = CurationStats()
    assert build_unpaired_examples([rec(1, "thumbs", "yes")], stats) == []
    assert stats.drops == {"thumbs_not_bool": 1}


def test_split_keeps_conversations_together_and_is_stable():
    rows = [{"conversation_id": f"c{i % 40}", "i": i} for i in range(200)]
    train, held = split_by_conversation(rows, 0.25, seed=0)
    assert len(train) + len(held) == 200
    assert {r["conversation_id"] for r in train}.isdisjoint({r["conversation_id"] for r in held})
    assert 0 < len(held) < 200
    train2, held2 = split_by_conversation(
        rows + [{"conversation_id": "new", "i": -1}], 0.25, seed=0
    )
    assert all(r in held2 for r in held)  # adding data never moves old rows across
    assert split_by_conversation(rows, 0.0, seed=0)[1] == []
