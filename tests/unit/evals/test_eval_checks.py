from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from ct_llm.evals.checks import case_passes, check_name, run_check
from ct_llm.evals.suite import Case, Check

_check = TypeAdapter(Check)


def chk(**kw: object) -> Check:
    return _check.validate_python(kw)


@pytest.mark.parametrize(
    ("check", "answer", "expected"),
    [
        ({"type": "regex", "pattern": r"\b60\b|sixty"}, "You have 60 days.", True),
        ({"type": "regex", "pattern": r"\b60\b|sixty"}, "You have SIXTY days.", True),
        ({"type": "regex", "pattern": r"\b60\b|sixty"}, "You have 600 days.", False),
        ({"type": "regex", "pattern": "Paris", "case_sensitive": True}, "paris", False),
        ({"type": "not_regex", "pattern": r"\b(60|90)\b|sixty|ninety"}, "In 3 to 5 days.", True),
        ({"type": "not_regex", "pattern": r"\b(60|90)\b|sixty|ninety"}, "Within 60 days.", False),
        ({"type": "not_regex", "pattern": r"\b(60|90)\b|sixty|ninety"}, "NINETY days", False),
        ({"type": "not_regex", "pattern": r"\b(60|90)\b|sixty|ninety"}, "Order #600", True),
        ({"type": "not_regex", "pattern": "Paris", "case_sensitive": True}, "paris", True),
        ({"type": "not_regex", "pattern": "Paris", "case_sensitive": True}, "in Paris", False),
        ({"type": "contains", "value": "Paris"}, "the capital is paris.", True),
        ({"type": "contains", "value": "Paris"}, "the capital is Lyon.", False),
        ({"type": "contains", "value": "Paris", "case_sensitive": True}, "paris", False),
        ({"type": "contains", "value": "Paris", "case_sensitive": True}, "in Paris", True),
        ({"type": "not_contains", "value": "sorry"}, "Sure, here it is.", True),
        ({"type": "not_contains", "value": "sorry"}, "I'm SORRY, I can't.", False),
        ({"type": "exact", "value": "yes"}, "  Yes\n", True),
        ({"type": "exact", "value": "yes"}, "yes indeed", False),
        ({"type": "exact", "value": "yes", "case_sensitive": True}, "Yes", False),
        ({"type": "json"}, '{"a": 1}', True),
        ({"type": "json"}, '```json\n{"a": [1, 2]}\n```', True),
        ({"type": "json"}, "{'a': 1}", False),
        ({"type": "json"}, "Here is JSON: {}", False),
        ({"type": "max_words", "value": 3}, "one two  three\n", True),
        ({"type": "max_words", "value": 3}, "one two three four", False),
    ],
)
def test_run_check(check: dict[str, object], answer: str, expected: bool) -> None:
    assert run_check(chk(**check), answer) is expected


def test_case_passes_names_the_failed_checks() -> None:
    case = Case.model_validate(
        {
            "id": "c1",
            "prompt": "capital of France?",
            "checks": [
                {"type": "contains", "value": "Paris"},
                {"type": "max_words", "value": 3},
                {"type": "regex", "pattern": "France"},
            ],
        }
    )
    ok, failed = case_passes(case, "The capital of France is Paris.")
    assert not ok
    assert failed == ["max_words 3"]
    ok, failed = case_passes(case, "France: Paris")
    assert ok and failed == []


def test_check_names_are_readable() -> None:
    assert check_name(chk(type="regex", pattern=r"\b60\b")) == r"regex '\\b60\\b'"
    assert check_name(chk(type="not_contains", value="x")) == "not_contains 'x'"
    assert check_name(chk(type="not_regex", pattern=r"\b60\b")) == r"not_regex '\\b60\\b'"
    assert check_name(chk(type="json")) == "json"


def test_not_regex_is_not_a_regex_check_and_validates_its_pattern() -> None:
    from pydantic import ValidationError

    from ct_llm.evals.suite import RegexCheck

    check = chk(type="not_regex", pattern="sixty")
    assert not isinstance(check, RegexCheck)
    with pytest.raises(ValidationError, match="invalid regular expression"):
        chk(type="not_regex", pattern="(")
    with pytest.raises(ValidationError):
        chk(type="not_regex", pattern="x", value="y")
