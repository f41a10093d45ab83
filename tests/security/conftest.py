"""The bad-input tests run the real app on a real database (SQLite, then PostgreSQL where it is
installed) with the model server faked in process (httpx.MockTransport), so a test can tell
whether a request reached the model server and what the gateway sent it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_model_server import FakeModelServer
from fastapi.testclient import TestClient

from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str | None) -> Workspace:
    from ct_llm.config import WorkspaceConfig

    return Workspace.init(tmp_path / "ws", WorkspaceConfig(database_url=database_url))


@pytest.fixture
def model_server() -> FakeModelServer:
    return FakeModelServer()


@pytest.fixture
def client(ws: Workspace, model_server: FakeModelServer) -> Iterator[TestClient]:
    app = create_app(ws, "http://model-server.test")
    # Every client the gateway opens talks to the fake instead of the network.
    app.state.gateway.new_client = lambda: httpx.AsyncClient(
        transport=httpx.MockTransport(model_server.handle)
    )
    # A 500 must come back as an answer the test can assert on, not as a raised exception.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def tenant() -> str:
    return "acme"


@pytest.fixture
def auth(ws: Workspace, tenant: str) -> dict[str, str]:
    """Headers with an ingest key of `tenant`."""
    return {"Authorization": f"Bearer {create_api_key(ws.database_url, tenant, 'ingest')}"}
