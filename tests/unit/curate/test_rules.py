"""Pairing rules, one by one, on hand-built prompt-context groups."""

from __future__ import annotations

from ct_llm.config import RULES
from ct_llm.curate.rules import Drops, FeedbackRecord, RuleConfig, apply_rules
from ct_llm.curate.split import heldout_bucket

PROMPT = [
    {"role": "system", "content": "You are a shop bot."},
    {"role": "user", "content": "How long do I have to return a jacket?"},
]
ALL = RuleConfig(rules=frozenset(RULES))


def rec(seq: int, kind: str, value, response: str = "30 days.", **kw) -> FeedbackRecord:
    kw.setdefault("response_id", f"r-{response}")
    kw.setdefault("user_id", f"u{seq}")
    return FeedbackRecord(
        seq=seq,
        event_id=f"e{seq}",
        kind=kind,
        value=value,
        messages=PROMPT,
        response=response,
        **kw,
    )


def run(group, cfg=ALL):
    drops = Drops()
    return apply_rules(group, cfg, drops), drops.counts


def by_rule(examples, rule):
    return [e for e in examples if e.rule == rule]


def test_edit_makes_a_dpo_pair_and_an_sft_example_in_trl_format():
    out, _ = run([rec(1, "edit", "You have 60 days.", conversation_id="c1")])
    (pair,) = by_rule(out, "edit_pair")
    assert pair.kind == "dpo" and pair.conversation == "c1" and pair.users == ("u1",)
    assert pair.row == {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": "You have 60 days."}],
        "rejected": [{"role": "assistant", "content": "30 days."}],
    }
    (sft,) = by_rule(out, "sft_edit")
    assert sft.row["completion"] == [{"role": "assistant", "content": "You have 60 days."}]


def test_a_users_latest_edit_of_an_answer_wins():
    out, drops = run(
        [rec(1, "edit", "45 days.", user_id="a"), rec(2, "edit", "60 days.", user_id="a")]
    )
    assert [e.row["chosen"][0]["content"] for e in by_rule(out, "edit_pair")] == ["60 days."]
    assert drops["edit_superseded_by_same_user"] == 1


def test_thumbs_up_vs_down_on_one_context_is_a_pair_not_kto():
    group = [rec(1, "thumbs", False, "30 days."), rec(2, "thumbs", True, "60 days.")]
    out, _ = run(group)
    (pair,) = by_rule(out, "thumbs_pair")
    assert pair.row["chosen"][0]["content"] == "60 days."
    assert pair.row["rejected"][0]["content"] == "30 days."
    assert pair.users == ("u1", "u2")
    assert by_rule(out, "thumbs_kto") == []


def test_unpaired_thumbs_become_kto_with_the_label():
    out, _ = run([rec(1, "thumbs", True, "60 days."), rec(2, "thumbs", True, "Sixty days.")])
    kto = by_rule(out, "thumbs_kto")
    assert [(e.row["completion"][0]["content"], e.row["label"]) for e in kto] == [
        ("60 days.", True),
        ("Sixty days.", True),
    ]


def test_conflicting_votes_latest_per_user_then_majority_then_tie_is_no_label():
    # u1 mis-clicks down then corrects to up; u2 up; u3 down -> 2 up vs 1 down: up.
    group = [
        rec(1, "thumbs", False, user_id="u1"),
        rec(2, "thumbs", True, user_id="u1"),
        rec(3, "thumbs", True, user_id="u2"),
        rec(4, "thumbs", False, user_id="u3"),
    ]
    out, drops = run(group)
    (kto,) = by_rule(out, "thumbs_kto")
    assert kto.row["label"] is True and kto.users == ("u1", "u2")
    assert drops["vote_superseded_by_same_user"] == 1
    out, drops = run([rec(1, "thumbs", True, user_id="a"), rec(2, "thumbs", False, user_id="b")])
    assert by_rule(out, "thumbs_kto") == [] and drops["votes_tied"] == 1


def test_thumbs_pair_needs_agreement_of_distinct_users_when_configured():
    cfg = RuleConfig(rules=frozenset(RULES), thumbs_pair_min_users=2)
    one_each = [rec(1, "thumbs", False, "30 days."), rec(2, "thumbs", True, "60 days.")]
    out, _ = run(one_each, cfg)
    assert by_rule(out, "thumbs_pair") == []
    two_each = one_each + [rec(3, "thumbs", False, "30 days."), rec(4, "thumbs", True, "60 days.")]
    out, _ = run(two_each, cfg)
    assert len(by_rule(out, "thumbs_pair")) == 1
    # The same user voting twice is one user, not agreement.
    same_user = one_each + [
        rec(3, "thumbs", False, "30 days.", user_id="u1"),
        rec(4, "thumbs", True, "60 days.", user_id="u2"),
    ]
    out, _ = run(same_user, cfg)
    assert by_rule(out, "thumbs_pair") == []


def test_each_answer_is_in_at_most_one_thumbs_pair():
    group = [
        rec(1, "thumbs", True, "A"),
        rec(2, "thumbs", True, "A"),
        rec(3, "thumbs", True, "B"),
        rec(4, "thumbs", False, "C"),
    ]
    out, _ = run(group)
    (pair,) = by_rule(out, "thumbs_pair")
    assert pair.row["chosen"][0]["content"] == "A"  # the better-supported one
    (kto,) = by_rule(out, "thumbs_kto")
    assert kto.row["completion"][0]["content"] == "B"


def test_ratings_pair_only_with_a_margin_of_two():
    out, _ = run([rec(1, "rating", 5, "A"), rec(2, "rating", 3, "B")])
    (pair,) = by_rule(out, "rating_pair")
    assert (pair.row["chosen"][0]["content"], pair.row["rejected"][0]["content"]) == ("A", "B")
    out, _ = run([rec(1, "rating", 4, "A"), rec(2, "rating", 3, "B")])
    assert by_rule(out, "rating_pair") == []


def test_ratings_use_each_users_latest_and_the_mean():
    group = [
        rec(1, "rating", 1, "A", user_id="x"),
        rec(2, "rating", 5, "A", user_id="x"),  # x changed their mind: A = mean(5, 3) = 4
        rec(3, "rating", 3, "A", user_id="y"),
        rec(4, "rating", 2, "B", user_id="z"),
    ]
    out, drops = run(group)
    (pair,) = by_rule(out, "rating_pair")
    assert pair.row["chosen"][0]["content"] == "A"
    assert drops["rating_superseded_by_same_user"] == 1


def test_top_rated_answers_become_sft():
    out, _ = run([rec(1, "rating", 5, "A"), rec(2, "rating", 4, "B")])
    assert [e.row["completion"][0]["content"] for e in by_rule(out, "sft_top_rated")] == ["A"]


def test_regenerate_pair_is_opt_in():
    group = [
        rec(1, "thumbs", True, "first", response_id="r1"),
        rec(2, "regenerate", "r2", "first", response_id="r1"),
        rec(3, "comment", "meh", "second", response_id="r2"),
    ]
    default = RuleConfig(rules=frozenset(r for r in RULES if r != "regenerate_pair"))
    assert by_rule(run(group, default)[0], "regenerate_pair") == []
    (pair,) = by_rule(run(group)[0], "regenerate_pair")
    assert (pair.row["chosen"][0]["content"], pair.row["rejected"][0]["content"]) == (
        "second",
        "first",
    )


def test_rules_can_be_switched_off():
    group = [rec(1, "edit", "60 days."), rec(2, "thumbs", True, "x")]
    out, _ = run(group, RuleConfig(rules=frozenset({"thumbs_kto"})))
    assert [e.rule for e in out] == ["thumbs_kto"]


def test_events_without_a_response_id_are_grouped_by_answer_text():
    group = [
        rec(1, "thumbs", True, "60 days.", response_id=None),
        rec(2, "thumbs", True, "60 days.", response_id=None),
    ]
    (kto,) = by_rule(run(group)[0], "thumbs_kto")
    assert kto.users == ("u1", "u2")


def test_heldout_bucket_is_stable_and_spreads():
    buckets = [heldout_bucket(f"c{i}", 0) for i in range(1000)]
    assert buckets == [heldout_bucket(f"c{i}", 0) for i in range(1000)]
    assert 0.15 < sum(b < 0.2 for b in buckets) / 1000 < 0.25
    assert heldout_bucket("c1", 0) != heldout_bucket("c1", 1)
