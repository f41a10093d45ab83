"""Every suite shipped in eval_suites/ loads: a broken suite fails here, not in a live eval."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.config import REPO_ROOT
from ct_llm.evals.suite import load_suite
from ct_llm.gate.policy import GatePolicy
from ct_llm.gate.record import load_policy

SUITE_FILES = sorted(
    p for p in (REPO_ROOT / "eval_suites").glob("**/*.yaml") if p.parent.name != "policies"
)
POLICY_FILES = sorted((REPO_ROOT / "eval_suites" / "policies").glob("*.yaml"))


def test_there_are_suites() -> None:
    assert any(p.parent.name == "regression" for p in SUITE_FILES)


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_suite_loads(path: Path) -> None:
    suite = load_suite(path)
    assert suite.cases
    # The folder says what a suite is for; a mismatch would silently flip the gate's rule.
    if path.parent.name == "regression":
        assert suite.kind == "regression"
    if path.parent.name == "safety":
        assert suite.kind == "safety"


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policy_loads(path: Path) -> None:
    load_policy(path)


def test_default_policy_file_matches_the_built_in_defaults() -> None:
    assert load_policy(REPO_ROOT / "eval_suites/policies/default.yaml") == GatePolicy()


def test_a_bad_policy_names_the_key(tmp_path: Path) -> None:
    from ct_llm.errors import ConfigError

    bad = tmp_path / "p.yaml"
    bad.write_text("max_latency_ratio: 1.2\nmin_judge_lower_bund: 0.4\n")
    with pytest.raises(ConfigError, match="min_judge_lower_bund"):
        load_policy(bad)
