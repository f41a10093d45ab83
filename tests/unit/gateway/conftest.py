from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.workspace import Workspace

# Nothing listens here (a port of this part's range kept free): the chat proxy's upstream is down.
DEAD_UPSTREAM = "http://127.0.0.1:18219"


@pytest.fixture
def ws(tmp_path: Path, database_url: str | None) -> Workspace:
    """A workspace on SQLite, then on PostgreSQL: every test here runs on both backends."""
    from ct_llm.config import WorkspaceConfig

    return Workspace.init(tmp_path / "ws", WorkspaceConfig(database_url=database_url))


@pytest.fixture
def keys(ws: Workspace) -> dict[str, str]:
    url = ws.database_url
    return {
        "acme": create_api_key(url, "acme", "ingest"),
        "acme_admin": create_api_key(url, "acme", "admin"),
        "globex": create_api_key(url, "globex", "ingest"),
    }


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    with TestClient(create_app(ws, DEAD_UPSTREAM)) as c:
        yield c
