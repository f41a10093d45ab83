"""Shared fixtures. The base model is converted once per machine into CT_LLM_CACHE
(`make test` sets it to <repo>/.cache); workspaces get hard-linked copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("CT_LLM_CACHE", str(REPO / ".cache"))


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    from ct_llm.train.model_import import cached_default_model

    return cached_default_model()


@pytest.fixture
def empty_workspace(tmp_path: Path):  # type: ignore[no-untyped-def]
    from ct_llm.workspace import Workspace

    return Workspace.init(tmp_path / "ws")


@pytest.fixture
def model_workspace(tmp_path: Path, base_model_dir: Path):  # type: ignore[no-untyped-def]
    """A workspace with the base model imported (hard links, so it is cheap)."""
    from ct_llm.train.model_import import import_model
    from ct_llm.workspace import Workspace

    ws = Workspace.init(tmp_path / "ws")
    import_model(str(base_model_dir), ws.base_model_dir)
    return ws
