from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent, LineageEvent
from ct_llm.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str | None) -> Workspace:
    """A workspace on SQLite, then on PostgreSQL: the aggregate queries differ per dialect."""
    from ct_llm.config import DeployConfig, WorkspaceConfig

    config = WorkspaceConfig(
        tenant="acme",
        database_url=database_url,
        deploy=DeployConfig(canary_check_interval_s=0),  # nothing acts on seeded canaries
    )
    return Workspace.init(tmp_path / "ws", config)


class Seed:
    """Rows written straight into the store, with the times a test needs."""

    def __init__(self, ws: Workspace) -> None:
        self.ws, self.n = ws, 0

    def _event(
        self, tenant: str, version: str | None, kind: str, value: Any, at: datetime, **extra: Any
    ) -> FeedbackEvent:
        self.n += 1
        return FeedbackEvent(
            tenant=tenant,
            event_id=f"e{self.n}",
            payload_hash="h",
            kind=kind,
            value=value,
            model_version=version,
            created_at=at,
            received_at=at,
            **extra,
        )

    def votes(
        self, tenant: str, version: str | None, kind: str, value: Any, at: datetime, n: int = 1
    ) -> None:
        rows = [self._event(tenant, version, kind, value, at) for _ in range(n)]
        with session_scope(self.ws.database_url) as s:
            s.add_all(rows)

    def logged_votes(
        self,
        tenant: str,
        version: str,
        kind: str,
        value: Any,
        at: datetime,
        n: int = 1,
        user: str | None = None,
    ) -> None:
        """`n` votes, each about its own answer the gateway logged for `user` (so each is a
        vote by feedback/votes.py's definition)."""
        with session_scope(self.ws.database_url) as s:
            for _ in range(n):
                self.n += 1
                rid = f"r{self.n}"
                s.add(
                    ChatResponse(
                        id=rid,
                        tenant=tenant,
                        messages=[{"role": "user", "content": "hi"}],
                        response="hello",
                        model_version=version,
                        latency_ms=1.0,
                        user_id=user,
                        created_at=at,
                    )
                )
                s.add(self._event(tenant, version, kind, value, at, response_id=rid))

    def event(
        self,
        tenant: str,
        version: str | None,
        action: str,
        outcome: str,
        at: datetime,
        **details: Any,
    ) -> None:
        with session_scope(self.ws.database_url) as s:
            s.add(
                LineageEvent(
                    tenant=tenant,
                    model_version=version,
                    action=action,
                    outcome=outcome,
                    actor="test",
                    details=details,
                    created_at=at,
                )
            )


@pytest.fixture
def seed(ws: Workspace) -> Seed:
    return Seed(ws)
