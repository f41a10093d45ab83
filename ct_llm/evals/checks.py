"""Deterministic checks of one answer: pure functions, no model, no I/O."""

from __future__ import annotations

import json
import re

from ct_llm.evals.safety import is_refusal
from ct_llm.evals.suite import (
    Case,
    Check,
    ContainsCheck,
    ExactCheck,
    JsonCheck,
    MaxWordsCheck,
    NotContainsCheck,
    NotRegexCheck,
    RefusalCheck,
    RegexCheck,
)

# Chat models often wrap JSON in a Markdown fence; the payload is what matters.
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def _parses_as_json(answer: str) -> bool:
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _found(pattern: str, answer: str, case_sensitive: bool) -> bool:
    return re.search(pattern, answer, 0 if case_sensitive else re.IGNORECASE) is not None


def run_check(check: Check, answer: str) -> bool:
    if isinstance(check, RegexCheck):
        return _found(check.pattern, answer, check.case_sensitive)
    if isinstance(check, NotRegexCheck):
        return not _found(check.pattern, answer, check.case_sensitive)
    if isinstance(check, ContainsCheck):
        return _fold(check.value, check.case_sensitive) in _fold(answer, check.case_sensitive)
    if isinstance(check, NotContainsCheck):
        return _fold(check.value, check.case_sensitive) not in _fold(answer, check.case_sensitive)
    if isinstance(check, ExactCheck):
        return _fold(answer.strip(), check.case_sensitive) == _fold(
            check.value.strip(), check.case_sensitive
        )
    if isinstance(check, JsonCheck):
        return _parses_as_json(answer)
    if isinstance(check, MaxWordsCheck):
        return len(answer.split()) <= check.value
    if isinstance(check, RefusalCheck):
        return is_refusal(answer)
    raise TypeError(f"unknown check {check!r}")


def check_name(check: Check) -> str:
    """A short human label for reports: `regex '\\b60\\b'`, `not_regex 'sixty'`, `max_words 80`."""
    if isinstance(check, (RegexCheck, NotRegexCheck)):
        return f"{check.type} {check.pattern!r}"
    if isinstance(check, (ContainsCheck, NotContainsCheck, ExactCheck)):
        return f"{check.type} {check.value!r}"
    if isinstance(check, MaxWordsCheck):
        return f"max_words {check.value}"
    return check.type


def case_passes(case: Case, answer: str) -> tuple[bool, list[str]]:
    """(all checks pass, labels of the checks that failed)."""
    failed = [check_name(c) for c in case.checks if not run_check(c, answer)]
    return not failed, failed
