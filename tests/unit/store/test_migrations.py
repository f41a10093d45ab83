"""Migrations on a fresh SQLite file and a fresh PostgreSQL database: the schema they build is
the one the models declare, and the indexes the monitoring reads rely on are there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ct_llm.store.db import alembic_config, get_engine, migrate
from ct_llm.store.models import Base

RECEIVED_INDEX = "ix_feedback_tenant_received"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: not the `database_url` fixture, whose PostgreSQL copies come from an
    already migrated template and so would not run the migrations under test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"m_{uuid.uuid4().hex[:16]}")
    yield url
    get_engine(url).dispose()


def _feedback_indexes(url: str) -> dict[str, list[str]]:
    with get_engine(url).connect() as conn:
        found = inspect(conn).get_indexes("feedback_events")
    return {ix["name"]: list(ix["column_names"]) for ix in found}


def _downgrade(url: str, revision: str) -> None:
    with get_engine(url).begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migrations_create_the_tenant_received_at_index(empty_url: str) -> None:
    migrate(empty_url)
    assert _feedback_indexes(empty_url)[RECEIVED_INDEX] == ["tenant", "received_at"]


def test_the_index_migration_downgrades_and_upgrades_again(empty_url: str) -> None:
    migrate(empty_url)
    _downgrade(empty_url, "0002")
    assert RECEIVED_INDEX not in _feedback_indexes(empty_url)
    migrate(empty_url)
    assert RECEIVED_INDEX in _feedback_indexes(empty_url)


def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    """What `alembic revision --autogenerate` would see: a model change without a migration
    (or a migration that differs from the model) shows up here."""
    migrate(empty_url)
    with get_engine(empty_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
