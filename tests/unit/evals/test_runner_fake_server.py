"""The runner's logic against a minimal in-process OpenAI-compatible server (canned answers).
The real vLLM path is tests/integration/test_eval_runner.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ct_llm.errors import ServingError
from ct_llm.evals.runner import evaluate, generate_answers, percentile
from ct_llm.evals.suite import Suite

PORT = 18102
ANSWERS = {
    ("cand", "capital of France?"): "Paris.",
    ("base", "capital of France?"): "Lyon.",
    ("cand", "2+2?"): "4",
    ("base", "2+2?"): "4",
    ("cand", "say hi"): "<script>alert(1)</script> hi",
    ("base", "say hi"): "hello there friend",
}


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0


def make_app(rec: Recorder) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "test"}
                for m in ("cand", "base")
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        rec.bodies.append(body)
        rec.in_flight += 1
        rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
        try:
            await asyncio.sleep(0.05)  # long enough for concurrent requests to overlap
        finally:
            rec.in_flight -= 1
        question = body["messages"][-1]["content"]
        if question == "boom" and body["model"] == "cand":
            return JSONResponse({"error": {"message": "engine exploded"}}, status_code=400)
        text = ANSWERS.get((body["model"], question), "no idea")
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    return app


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()
    server = uvicorn.Server(
        uvicorn.Config(make_app(rec), host="127.0.0.1", port=PORT, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{PORT}", rec
    server.should_exit = True
    thread.join(timeout=5)


SUITES = [
    Suite.model_validate(
        {
            "name": "general",
            "kind": "regression",
            "system_prompt": "Be brief.",
            "cases": [
                {
                    "id": "france",
                    "prompt": "capital of France?",
                    "checks": [{"type": "contains", "value": "paris"}],
                },
                {
                    "id": "math",
                    "prompt": "2+2?",
                    "checks": [{"type": "regex", "pattern": r"\b4\b"}],
                },
                {"id": "err", "prompt": "boom", "checks": [{"type": "max_words", "value": 50}]},
            ],
        }
    ),
    Suite.model_validate(
        {
            "name": "greet",
            "kind": "target",
            "cases": [
                {
                    "id": "hi",
                    "prompt": "say hi",
                    "checks": [
                        {"type": "contains", "value": "hi"},
                        {"type": "max_words", "value": 3},
                    ],
                }
            ],
        }
    ),
]


def test_evaluate_scores_both_models_and_survives_a_failed_request(
    fake_server: tuple[str, Recorder],
) -> None:
    url, rec = fake_server
    rec.bodies.clear()
    result = evaluate(url, "cand", "base", SUITES, max_tokens=17, concurrency=4)
    general, greet = result.suites
    by_id = {c.id: c for c in general.cases}
    assert by_id["france"].candidate_passed and not by_id["france"].baseline_passed
    assert by_id["france"].baseline_failed_checks == ["contains 'paris'"]
    assert by_id["math"].candidate_passed and by_id["math"].baseline_passed
    # The candidate's request failed: counted as a failed case with the error, the eval went on.
    err = by_id["err"]
    assert not err.candidate_passed and err.baseline_passed
    assert err.candidate_error is not None and "400" in err.candidate_error
    assert general.candidate_pass_rate == pytest.approx(2 / 3)
    assert general.baseline_pass_rate == pytest.approx(2 / 3)
    assert greet.candidate_pass_rate == 1.0 and greet.baseline_pass_rate == 0.0

    s = result.summary()
    assert s["candidate"] == "cand" and s["baseline"] == "base"
    assert s["suites"]["greet"] == {
        "kind": "target",
        "candidate_pass_rate": 1.0,
        "baseline_pass_rate": 0.0,
        "n": 1,
    }
    assert s["latency"]["candidate"]["errors"] == 1 and s["latency"]["candidate"]["n"] == 3
    assert s["latency"]["baseline"]["n"] == 4
    assert s["latency"]["baseline"]["p50_ms"] >= 50  # the server sleeps 50 ms per request
    d = result.to_dict()
    assert d["suites"][0]["cases"][0]["candidate_answer"] == "Paris."

    # Greedy, capped, with the suite's system prompt, sent concurrently.
    assert len(rec.bodies) == 8
    assert all(b["temperature"] == 0 and b["max_tokens"] == 17 for b in rec.bodies)
    france = next(b for b in rec.bodies if b["messages"][-1]["content"] == "capital of France?")
    assert france["messages"][0] == {"role": "system", "content": "Be brief."}
    assert 1 < rec.max_in_flight <= 4


def test_generate_answers_keeps_order(fake_server: tuple[str, Recorder]) -> None:
    url, _ = fake_server
    convs = [[{"role": "user", "content": q}] for q in ("2+2?", "capital of France?", "boom")]
    assert generate_answers(url + "/v1", "cand", convs, max_tokens=8, concurrency=2) == [
        "4",
        "Paris.",
        "",
    ]


def test_unknown_model_and_unreachable_server_are_serving_errors(
    fake_server: tuple[str, Recorder],
) -> None:
    url, _ = fake_server
    with pytest.raises(ServingError, match="'nope' is not served .* serves: cand, base"):
        evaluate(url, "nope", "base", SUITES)
    with pytest.raises(ServingError, match="cannot reach"):
        evaluate("http://127.0.0.1:18119", "cand", "base", SUITES, timeout_s=2)


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
