"""The demo's workspace settings: what it turns off and what it gives vLLM, and why it may."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ct_llm.demo.run import _prepare_workspace
from ct_llm.deploy.dtype import has_gpu
from ct_llm.errors import CtLlmError
from ct_llm.gate.record import load_policy


def test_the_demo_workspace(tmp_path: Path) -> None:
    ws = _prepare_workspace(tmp_path / "demo", fresh=False)
    cfg = ws.config
    # SmolLM2 judging itself answers "A" to everything: not gated on, so not asked.
    assert cfg.gate.min_judge_lower_bound is None and not cfg.eval.judge.enabled
    assert cfg.gate == load_policy("eval_suites/policies/cpu_demo.yaml")
    assert cfg.eval.performance.max_rounds == 4 and cfg.gate.latency_undecided == "approve"
    assert cfg.eval.concurrency == 16
    assert "scenarios/shop_contrast.yaml" in cfg.eval.suites
    if not has_gpu():
        cores = ",".join(map(str, sorted(os.sched_getaffinity(0))))
        assert cfg.serving.cpu_bind == [cores]
    # Re-running needs --fresh; --fresh never deletes a folder that is not a workspace.
    with pytest.raises(CtLlmError, match="--fresh"):
        _prepare_workspace(tmp_path / "demo", fresh=False)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(CtLlmError, match="not a ct-llm workspace"):
        _prepare_workspace(other, fresh=True)
    assert (other / "notes.txt").exists()
