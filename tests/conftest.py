"""Shared fixtures. The base model is converted once per machine into CT_LLM_CACHE
(`make test` sets it to <repo>/.cache); workspaces get hard-linked copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from required_services import missing_service

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


@pytest.fixture(scope="session")
def postgres():  # type: ignore[no-untyped-def]
    """One throwaway PostgreSQL server for the session, with a migrated template database."""
    from ct_llm.store.db import get_engine, migrate
    from ct_llm.store.local_postgres import LocalPostgres, postgres_binaries

    if postgres_binaries() is None:
        missing_service("PostgreSQL is not installed here (initdb, pg_ctl, psql)")
    with LocalPostgres() as pg:
        template = pg.create_database("ct_template")
        migrate(template)
        get_engine(template).dispose()  # a template must have no open connections
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """None (the workspace's own SQLite file) or a fresh PostgreSQL database: tests that take
    this fixture run once per backend."""
    if request.param == "sqlite":
        yield None
        return
    import uuid

    from ct_llm.store.db import get_engine

    pg = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:16]}"
    pg.psql(f"CREATE DATABASE {name} TEMPLATE ct_template")
    url = pg.url(name)
    yield url
    get_engine(url).dispose()
