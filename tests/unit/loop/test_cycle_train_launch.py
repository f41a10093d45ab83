"""`ct-llm cycle` launches training as the workspace's `train:` settings say, or as the run's
--nproc / --accelerate-config override them; a resumed training gets the same launcher.

Curation and training are stand-ins here (the stand-in training stops the cycle before it would
start vLLM); the real path is tests/integration/test_loop.py and test_train_distributed.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from ct_llm.errors import ConfigError
from ct_llm.loop.cycle import CycleFailed, run_cycle
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

TENANT = "acme"
FSDP = "recipes/accelerate/fsdp.yaml"


class FakeTraining:
    """Records how train_candidate was called, then fails: the cycle ends at its train stage."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, ws: Workspace, tenant: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        raise RuntimeError("stand-in training")


@pytest.fixture
def training(monkeypatch: pytest.MonkeyPatch) -> FakeTraining:
    fake = FakeTraining()
    dataset = SimpleNamespace(version=f"{TENANT}-data-v1", to_dict=lambda: {"version": "d"})
    monkeypatch.setattr("ct_llm.train.candidate.train_candidate", fake)
    monkeypatch.setattr("ct_llm.train.candidate.interrupted_training", lambda ws, t: None)
    monkeypatch.setattr("ct_llm.curate.dataset.curate_dataset", lambda ws, t: dataset)
    return fake


def _cycle(ws: Workspace, **kwargs: Any) -> None:
    with pytest.raises(CycleFailed, match="failed at train"):
        run_cycle(ws, TENANT, force=True, **kwargs)


def test_the_cycle_trains_with_the_workspace_settings(
    empty_workspace: Workspace, training: FakeTraining
) -> None:
    empty_workspace.config.train.nproc = 2
    _cycle(empty_workspace)
    (call,) = training.calls
    assert (call["nproc"], call["accelerate_config"]) == (2, None)
    assert call["restart"] is True


def test_the_run_overrides_the_settings(empty_workspace: Workspace, training: FakeTraining) -> None:
    empty_workspace.config.train.nproc = 2
    _cycle(empty_workspace, nproc=4, accelerate_config=FSDP)
    empty_workspace.config.train.accelerate_config = FSDP
    _cycle(empty_workspace, nproc=1)  # one process, still through accelerate (the setting)
    assert [(c["nproc"], c["accelerate_config"]) for c in training.calls] == [(4, FSDP), (1, FSDP)]


def test_a_resumed_training_gets_the_same_launcher(
    empty_workspace: Workspace, training: FakeTraining, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "ct_llm.train.candidate.interrupted_training", lambda ws, t: f"{TENANT}-assistant-v1"
    )
    empty_workspace.config.train.nproc = 8
    empty_workspace.config.train.accelerate_config = FSDP
    _cycle(empty_workspace)
    (call,) = training.calls
    assert call["resume"] is True and (call["nproc"], call["accelerate_config"]) == (8, FSDP)


def test_a_bad_process_count_is_refused_before_anything_runs(
    empty_workspace: Workspace, training: FakeTraining
) -> None:
    with pytest.raises(ConfigError, match="'nproc': Input should be greater than or equal to 1"):
        run_cycle(empty_workspace, TENANT, force=True, nproc=0)
    assert training.calls == []
    with session_scope(empty_workspace.database_url) as s:
        assert registry.history(s, TENANT) == []  # not even a declined check was recorded
