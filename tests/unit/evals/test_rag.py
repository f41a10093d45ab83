"""RAG metrics: schema bounding, reading the judge's structured output, score cleaning and
error accounting, then the whole per-sample scheduling against a fake OpenAI client (ragas'
real metric classes, no network, no model)."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from ct_llm.evals import rag
from ct_llm.evals.rag import (
    INSTALL_HINT,
    JudgeOutputError,
    RagSample,
    bound_schema,
    check_metrics,
    clean_score,
    format_error,
    parse_structured,
    score_rag_samples,
)

# The shape pydantic gives ragas' NLIStatementOutput: a list of objects behind a $ref.
NLI_SCHEMA: dict[str, Any] = {
    "$defs": {
        "StatementFaithfulnessAnswer": {
            "properties": {
                "statement": {"type": "string"},
                "reason": {"type": "string"},
                "verdict": {"type": "integer"},
            },
            "required": ["statement", "reason", "verdict"],
            "type": "object",
        }
    },
    "properties": {
        "statements": {
            "items": {"$ref": "#/$defs/StatementFaithfulnessAnswer"},
            "type": "array",
        }
    },
    "required": ["statements"],
    "type": "object",
}


def test_bound_schema_caps_lists_strings_and_binary_verdicts() -> None:
    bounded = bound_schema(NLI_SCHEMA, max_items=3, max_chars=50)
    assert bounded["properties"]["statements"]["maxItems"] == 3
    item = bounded["$defs"]["StatementFaithfulnessAnswer"]["properties"]
    assert item["statement"]["maxLength"] == 50
    assert item["reason"]["maxLength"] == 50
    assert item["verdict"]["enum"] == [0, 1]
    # The input is left alone (pydantic caches nothing, but callers may reuse their dict).
    assert "maxItems" not in NLI_SCHEMA["properties"]["statements"]
    assert "enum" not in NLI_SCHEMA["$defs"]["StatementFaithfulnessAnswer"]["properties"]["verdict"]


def test_bound_schema_keeps_tighter_existing_bounds_and_plain_integers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 5}},
            "count": {"type": "integer"},
        },
    }
    bounded = bound_schema(schema, max_items=10, max_chars=100)
    assert bounded["properties"]["tags"]["maxItems"] == 2
    assert bounded["properties"]["tags"]["items"]["maxLength"] == 5
    assert "enum" not in bounded["properties"]["count"]


class Verdict(BaseModel):
    question: str
    noncommittal: int


def test_parse_structured_reads_valid_json() -> None:
    v = parse_structured(' {"question": "Q?", "noncommittal": 0} ', "stop", Verdict)
    assert v == Verdict(question="Q?", noncommittal=0)


@pytest.mark.parametrize(
    ("text", "finish", "expected"),
    [
        ('{"question": "Q?", "noncommi', "length", "cut at max_tokens"),
        ('{"question": "Q?", "noncommittal": 0}', "length", "cut at max_tokens"),
        ("", "stop", "empty answer"),
        (None, "stop", "empty answer"),
        ("The answer is relevant.", "stop", "not a valid Verdict"),
        ('{"question": "Q?"}', "stop", "not a valid Verdict"),
    ],
)
def test_parse_structured_rejects_unusable_output(
    text: str | None, finish: str, expected: str
) -> None:
    with pytest.raises(JudgeOutputError, match=expected):
        parse_structured(text, finish, Verdict)


@pytest.mark.parametrize(
    ("raw", "score"),
    [(0.5, 0.5), (1, 1.0), (0.0, 0.0), (-0.12, 0.0), (1.0000002, 1.0), ("0.25", 0.25)],
)
def test_clean_score_keeps_scores_in_unit_interval(raw: Any, score: float) -> None:
    assert clean_score(raw) == (score, None)


@pytest.mark.parametrize(
    ("raw", "why"),
    [(math.nan, "no statements"), (math.inf, "not a finite"), (None, "not a number")],
)
def test_clean_score_gives_reason_instead_of_a_score(raw: Any, why: str) -> None:
    score, reason = clean_score(raw)
    assert score is None
    assert reason is not None and why in reason


def test_check_metrics() -> None:
    assert check_metrics(("answer_relevancy",)) == ("answer_relevancy",)
    assert check_metrics(["faithfulness", "answer_relevancy"]) == rag.METRICS
    with pytest.raises(ValueError, match="unknown RAG metric.*context_recall"):
        check_metrics(("faithfulness", "context_recall"))
    with pytest.raises(ValueError, match="twice"):
        check_metrics(("faithfulness", "faithfulness"))
    with pytest.raises(ValueError, match="no RAG metric"):
        check_metrics(())


def test_format_error_is_one_short_line_naming_the_metric() -> None:
    assert format_error("faithfulness", TimeoutError(), 30) == "faithfulness: timed out after 30 s"
    assert format_error("faithfulness", asyncio.TimeoutError(), 2.5).endswith("after 2.5 s")
    line = format_error("answer_relevancy", ConnectionError("refused\n  at port 1"), 30)
    assert line == "answer_relevancy: ConnectionError: refused at port 1"
    line = format_error("faithfulness", JudgeOutputError("x" * 1000), 30)
    assert line.startswith("faithfulness: xxx") and len(line) < 400


def test_score_rag_samples_validates_before_touching_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rag, "rag_available", lambda: pytest.fail("should not get this far"))
    kwargs = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    assert score_rag_samples([], **kwargs) == []
    twice = [RagSample("a", "q", ["c"], "x"), RagSample("a", "q", ["c"], "y")]
    with pytest.raises(ValueError, match="unique"):
        score_rag_samples(twice, **kwargs)
    one = twice[:1]
    with pytest.raises(ValueError, match="unknown RAG metric"):
        score_rag_samples(one, metrics=("bleu",), **kwargs)
    with pytest.raises(ValueError, match="concurrency"):
        score_rag_samples(one, concurrency=0, **kwargs)


def test_missing_install_is_an_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rag, "_REQUIRED", {"no-such-dist": "no_such_module_ct_llm_test"})
    message = rag.rag_available()
    assert message is not None
    assert "no-such-dist" in message and INSTALL_HINT in message
    with pytest.raises(RuntimeError, match="no-such-dist"):
        score_rag_samples(
            [RagSample("a", "q", ["c"], "x")], base_url="http://127.0.0.1:9/v1", model="m"
        )


def test_importing_the_module_stays_light() -> None:
    code = (
        "import sys, ct_llm, ct_llm.evals.rag; "
        "heavy = [m for m in ('ragas', 'torch', 'sentence_transformers', 'langchain_core') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- the whole scoring path with ragas' real metrics and a fake judge ------------------------


class _FakeCompletions:
    """Answers by the schema asked for and a marker word in the answer under test."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def create(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        schema_name = kwargs["response_format"]["json_schema"]["name"]
        # Only the text after ragas' examples is the input under test.
        prompt = kwargs["messages"][0]["content"].rsplit("Now perform the same", 1)[-1]
        content, finish = self._reply(schema_name, prompt)
        message = type("Message", (), {"content": content})()
        choice = type("Choice", (), {"message": message, "finish_reason": finish})()
        return type("Completion", (), {"choices": [choice]})()

    def _reply(self, schema_name: str, prompt: str) -> tuple[str, str]:
        if "CUT" in prompt:
            return '{"statements": ["a', "length"
        if "JUNK" in prompt:
            return "I think the answer is fine.", "stop"
        if schema_name == "StatementGeneratorOutput":
            if "EMPTY" in prompt:
                return json.dumps({"statements": []}), "stop"
            mark = "GOOD" if "GOOD" in prompt else "HALF"
            return json.dumps({"statements": [f"one {mark}", f"two {mark}"]}), "stop"
        if schema_name == "NLIStatementOutput":
            verdicts = [1, 1] if "GOOD" in prompt else [1, 0]
            items = [
                {"statement": f"s{i}", "reason": "r", "verdict": v} for i, v in enumerate(verdicts)
            ]
            return json.dumps({"statements": items}), "stop"
        if schema_name == "AnswerRelevanceOutput":
            noncommittal = 0 if "GOOD" in prompt else 1
            return json.dumps({"question": "What?", "noncommittal": noncommittal}), "stop"
        raise AssertionError(f"unexpected schema {schema_name}")


class _HangingCompletions(_FakeCompletions):
    async def create(self, **kwargs: Any) -> Any:
        if "HANG" in kwargs["messages"][0]["content"].rsplit("Now perform the same", 1)[-1]:
            await asyncio.sleep(60)
        return await super().create(**kwargs)


@pytest.fixture
def fake_judge(monkeypatch: pytest.MonkeyPatch) -> _FakeCompletions:
    pytest.importorskip("ragas", reason="ragas is installed with the `rag` extra")
    import openai
    from ragas.embeddings.base import BaseRagasEmbedding

    completions = _HangingCompletions()

    class FakeClient:
        def __init__(self, **kwargs: Any) -> None:
            self.chat = type("Chat", (), {"completions": completions})()

        async def __aenter__(self) -> FakeClient:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    class SameVector(BaseRagasEmbedding):
        """Every text embeds to one vector: a generated question always matches (cosine 1)."""

        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [0.6, 0.8]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [0.6, 0.8]

    monkeypatch.setattr(openai, "AsyncOpenAI", FakeClient)
    monkeypatch.setattr(rag, "_offline_embeddings", SameVector)
    monkeypatch.setattr(rag, "rag_available", lambda: None)
    return completions


def test_scores_failures_and_timeouts_per_sample_and_metric(fake_judge: _FakeCompletions) -> None:
    samples = [
        RagSample("good", "Q GOOD?", ["ctx"], "answer GOOD"),
        RagSample("half", "Q?", ["ctx"], "answer HALF"),
        RagSample("cut", "Q?", ["ctx"], "answer CUT"),
        RagSample("junk", "Q?", ["ctx"], "answer JUNK"),
        RagSample("hang", "Q?", ["ctx"], "answer HANG"),
        RagSample("empty", "Q?", ["ctx"], "answer EMPTY GOOD"),
        RagSample("no-context", "Q?", [], "answer GOOD"),
    ]
    results = score_rag_samples(
        samples,
        base_url="http://fake/v1",
        model="judge",
        timeout_s=0.5,
        concurrency=3,
        max_tokens=77,
        max_list_items=4,
    )
    by_id = {r.id: r for r in results}
    assert [r.id for r in results] == [s.id for s in samples]

    assert by_id["good"].scores == {"faithfulness": 1.0, "answer_relevancy": pytest.approx(1.0)}
    assert by_id["good"].errors == []
    # One of two statements supported; a noncommittal answer has relevancy 0 (ragas' rule).
    assert by_id["half"].scores == {"faithfulness": 0.5, "answer_relevancy": 0.0}

    for sample_id, why in [("cut", "cut at max_tokens"), ("junk", "not a valid")]:
        r = by_id[sample_id]
        assert r.scores == {"faithfulness": None, "answer_relevancy": None}
        assert [e.split(":")[0] for e in r.errors] == ["faithfulness", "answer_relevancy"]
        assert all(why in e for e in r.errors), r.errors

    hang = by_id["hang"]
    assert hang.scores == {"faithfulness": None, "answer_relevancy": None}
    assert hang.errors == [
        "faithfulness: timed out after 0.5 s",
        "answer_relevancy: timed out after 0.5 s",
    ]
    assert all(0.4 < s < 5 for s in hang.seconds.values())

    empty = by_id["empty"]
    assert empty.scores["faithfulness"] is None
    assert "no statements" in empty.errors[0]
    assert empty.scores["answer_relevancy"] == pytest.approx(1.0)

    no_context = by_id["no-context"]
    assert no_context.scores["faithfulness"] is None
    assert "retrieved_contexts" in no_context.errors[0]

    # Every request was constrained by the bounded schema and capped as asked.
    call = fake_judge.calls[0]
    assert call["model"] == "judge" and call["max_tokens"] == 77 and call["temperature"] == 0.0
    for call in fake_judge.calls:
        schema = call["response_format"]["json_schema"]["schema"]
        assert call["response_format"]["type"] == "json_schema"
        text = json.dumps(schema)
        assert '"maxItems": 10' not in text
        if "statements" in schema["properties"]:
            assert schema["properties"]["statements"]["maxItems"] == 4


def test_answer_relevancy_alone_asks_one_question_per_sample(fake_judge: _FakeCompletions) -> None:
    results = score_rag_samples(
        [RagSample("good", "Q GOOD?", ["ctx"], "answer GOOD")],
        base_url="http://fake/v1",
        model="judge",
        metrics=("answer_relevancy",),
    )
    assert results[0].scores == {"answer_relevancy": pytest.approx(1.0)}
    assert set(results[0].seconds) == {"answer_relevancy"}
    # Greedy decoding would make ragas' default 3 generated questions identical.
    assert len(fake_judge.calls) == 1
