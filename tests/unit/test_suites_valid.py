"""Every suite shipped in eval_suites/ loads: a broken suite fails here, not in a live eval."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.config import REPO_ROOT
from ct_llm.evals.suite import load_suite

SUITE_FILES = sorted((REPO_ROOT / "eval_suites").glob("**/*.yaml"))


def test_there_are_suites() -> None:
    assert any(p.parent.name == "regression" for p in SUITE_FILES)


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_suite_loads(path: Path) -> None:
    suite = load_suite(path)
    assert suite.cases
    # The folder says what a suite is for; a mismatch would silently flip the gate's rule.
    if path.parent.name == "regression":
        assert suite.kind == "regression"
