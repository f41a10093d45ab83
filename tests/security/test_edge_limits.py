"""The edge (gateway/edge.py): the body limit holds on every route before anything reads the
body, and an admin route checks the key before it parses the body (issue 17: 200 MB to
/v1/admin/canary was read and parsed before the missing key was noticed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ct_llm.gateway.auth import create_api_key
from ct_llm.workspace import Workspace

LIMIT = 1_000_000  # api.max_body_bytes' default


@pytest.mark.parametrize(
    "path", ["/v1/admin/canary", "/v1/admin/promote", "/v1/admin/rollback", "/v1/feedback"]
)
def test_an_oversized_body_is_413_on_every_route_before_auth(client: TestClient, path: str) -> None:
    r = client.post(path, content=b"x" * (LIMIT + 1))  # no key at all
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 100_000

    r = client.post("/v1/admin/canary", content=chunks())
    assert r.status_code == 413


@pytest.mark.parametrize("path", ["/v1/admin/canary", "/v1/admin/promote"])
def test_an_admin_route_checks_the_key_before_the_body(client: TestClient, path: str) -> None:
    r = client.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401


def test_an_ingest_key_is_refused_before_its_admin_body_is_read(
    client: TestClient, auth: dict[str, str]
) -> None:
    r = client.post("/v1/admin/canary", content=b"{not json", headers=auth)
    assert r.status_code == 403


def test_a_bad_admin_body_is_a_clear_400(client: TestClient, ws: Workspace, tenant: str) -> None:
    admin = {"Authorization": f"Bearer {create_api_key(ws.database_url, tenant, 'admin')}"}
    r = client.post("/v1/admin/canary", json={"version": "v1", "weight": 7}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("weight:")
    r = client.post("/v1/admin/canary", content=b"{not json", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = client.post("/v1/admin/promote", json={"versoin": "v1"}, headers=admin)
    assert r.status_code == 400 and "versoin" in r.json()["error"]["message"]


def test_a_body_under_the_limit_still_reaches_the_route(
    client: TestClient, auth: dict[str, str]
) -> None:
    event = {"event_id": "e", "kind": "thumbs", "value": True, "response": "a"}
    event["messages"] = [{"role": "user", "content": "x" * 50_000}]
    r = client.post("/v1/feedback", json=event, headers=auth)
    assert r.status_code == 200 and r.json()["accepted"] == 1
