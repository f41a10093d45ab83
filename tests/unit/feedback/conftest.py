from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse
from ct_llm.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str | None) -> Workspace:
    """A workspace on SQLite, then on PostgreSQL: every test here runs on both backends."""
    from ct_llm.config import WorkspaceConfig

    return Workspace.init(tmp_path / "ws", WorkspaceConfig(database_url=database_url))


@pytest.fixture
def session(ws: Workspace) -> Iterator[Session]:
    with session_scope(ws.database_url) as s:
        yield s


@pytest.fixture
def add_response(ws: Workspace) -> Callable[..., str]:
    """Log an answer as the gateway would; returns its response_id."""

    def add(
        tenant: str,
        response_id: str,
        model_version: str = "base",
        conversation_id: str | None = "conv-1",
        response: str = "Paris.",
        user_id: str | None = None,
    ) -> str:
        with session_scope(ws.database_url) as s:
            s.add(
                ChatResponse(
                    id=response_id,
                    tenant=tenant,
                    conversation_id=conversation_id,
                    messages=[{"role": "user", "content": "Capital of France?"}],
                    response=response,
                    model_version=model_version,
                    latency_ms=5.0,
                    user_id=user_id,
                )
            )
        return response_id

    return add
