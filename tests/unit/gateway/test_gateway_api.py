"""The API over HTTP semantics (FastAPI TestClient) against a real SQLite workspace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ct_llm.config import ApiConfig, WorkspaceConfig
from ct_llm.errors import RegistryError
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key, revoke_api_key
from ct_llm.gateway.routes import admin as admin_routes
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse
from ct_llm.workspace import Workspace

# The conftest's client proxies to a port where nothing listens.
DEAD_UPSTREAM = "http://127.0.0.1:18219"


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_response(ws: Workspace, tenant: str, rid: str, version: str = "base") -> None:
    with session_scope(ws.database_url) as s:
        s.add(
            ChatResponse(
                id=rid,
                tenant=tenant,
                conversation_id="c",
                model_version=version,
                messages=[{"role": "user", "content": "q"}],
                response="a",
                latency_ms=1.0,
            )
        )


def thumbs(eid: str, value: bool, rid: str = "r1") -> dict[str, Any]:
    return {"event_id": eid, "kind": "thumbs", "value": value, "response_id": rid}


def assert_openai_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code"} and err["message"]
    return err


ENDPOINTS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/feedback/stats"),
    ("GET", "/v1/status"),
    ("GET", "/metrics"),
    ("GET", "/v1/admin/status.html"),
    ("POST", "/v1/admin/rollback"),
    ("POST", "/v1/admin/canary"),
    ("POST", "/v1/admin/promote"),
]
ADMIN_ONLY = {
    "/metrics",
    "/v1/admin/status.html",
    "/v1/admin/rollback",
    "/v1/admin/canary",
    "/v1/admin/promote",
}


def test_healthz_needs_no_key_and_reports_upstream(client: TestClient) -> None:
    r = client.get("/healthz")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok" and body["db"] is True
    assert body["upstream"] is False and list(body["replicas"].values()) == [False]


def test_auth_matrix(client: TestClient, ws: Workspace, keys: dict[str, str]) -> None:
    revoked = create_api_key(ws.database_url, "acme", "admin")
    revoke_api_key(ws.database_url, revoked[:12])
    for method, path in ENDPOINTS:
        assert_openai_error(client.request(method, path), 401)
        assert_openai_error(client.request(method, path, headers=h("ctk_wrong")), 401)
        assert_openai_error(client.request(method, path, headers=h(revoked)), 401)
        r = client.request(method, path, headers=h(keys["acme"]))
        if path in ADMIN_ONLY:
            assert assert_openai_error(r, 403)["type"] == "permission_error"
        else:
            assert r.status_code not in (401, 403), (path, r.text)


def test_feedback_idempotency_over_http(
    client: TestClient, ws: Workspace, keys: dict[str, str]
) -> None:
    add_response(ws, "acme", "r1")
    batch = {"events": [thumbs("e1", True), thumbs("e2", False)]}
    first = client.post("/v1/feedback", json=batch, headers=h(keys["acme"])).json()
    assert first == {"accepted": 2, "duplicates": 0, "rejected": []}
    again = client.post("/v1/feedback", json=batch, headers=h(keys["acme"])).json()
    assert again == {"accepted": 0, "duplicates": 2, "rejected": []}
    conflict = client.post(
        "/v1/feedback", json={"events": [thumbs("e1", False)]}, headers=h(keys["acme"])
    ).json()
    assert conflict["rejected"][0]["event_id"] == "e1"
    assert "conflict" in conflict["rejected"][0]["error"]
    stats = client.get("/v1/feedback/stats", headers=h(keys["acme"])).json()
    assert stats["by_kind"] == {"thumbs": 2}


def test_single_event_body_and_partial_batch(
    client: TestClient, ws: Workspace, keys: dict[str, str]
) -> None:
    add_response(ws, "acme", "r1")
    r = client.post("/v1/feedback", json=thumbs("one", True), headers=h(keys["acme"]))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    batch = {
        "events": [
            thumbs("a", True),
            {"event_id": "b", "kind": "rating", "value": 7, "response_id": "r1"},
            thumbs("c", True, "nope"),
        ]
    }
    res = client.post("/v1/feedback", json=batch, headers=h(keys["acme"])).json()
    assert res["accepted"] == 1
    assert [(x["index"], x["event_id"]) for x in res["rejected"]] == [(1, "b"), (2, "c")]
    assert "unknown response_id" in res["rejected"][1]["error"]


def test_bad_bodies(client: TestClient, keys: dict[str, str]) -> None:
    hdr = {**h(keys["acme"]), "Content-Type": "application/json"}
    assert_openai_error(client.post("/v1/feedback", content=b"{not json", headers=hdr), 400)
    assert_openai_error(client.post("/v1/feedback", content=b"[1, 2]", headers=hdr), 400)
    assert_openai_error(client.post("/v1/feedback", json={"events": "x"}, headers=hdr), 400)
    big = json.dumps({"events": [thumbs("e", True)] * 20_000}).encode()
    err = assert_openai_error(client.post("/v1/feedback", content=big, headers=hdr), 413)
    assert "max_body_bytes" in err["message"]


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    cfg = WorkspaceConfig(
        api=ApiConfig(
            max_body_bytes=2000, max_events_per_batch=3, max_text_chars=20, max_comment_chars=5
        )
    )
    ws = Workspace.init(tmp_path / "small", cfg)
    key = create_api_key(ws.database_url, "acme", "ingest")
    with TestClient(create_app(ws, DEAD_UPSTREAM)) as c:
        yield c, key


def test_limits_count_real_bytes_and_events(small_client: tuple[TestClient, str]) -> None:
    client, key = small_client

    def chunked() -> Iterator[bytes]:  # no Content-Length: the bytes read must be counted
        yield b'{"events": ['
        for _ in range(100):
            yield json.dumps(thumbs("e", True)).encode() + b","
        yield b"]}"

    assert_openai_error(client.post("/v1/feedback", content=chunked(), headers=h(key)), 413)
    err = assert_openai_error(
        client.post(
            "/v1/feedback",
            json={"events": [thumbs(str(i), True) for i in range(4)]},
            headers=h(key),
        ),
        413,
    )
    assert "max_events_per_batch" in err["message"]


def test_text_limits_come_from_the_config(small_client: tuple[TestClient, str]) -> None:
    client, key = small_client
    exchange = {"messages": [{"role": "user", "content": "Hi?"}], "response": "Hello!"}
    events = [
        {"event_id": "long-edit", "kind": "edit", "value": "x" * 21, **exchange},
        {"event_id": "long-comment", "kind": "comment", "value": "123456", **exchange},
        {"event_id": "ok", "kind": "edit", "value": "x" * 20, **exchange},
    ]
    answer = client.post("/v1/feedback", json={"events": events}, headers=h(key)).json()
    assert answer["accepted"] == 1
    errors = [r["error"] for r in answer["rejected"]]
    assert "longer than 20 characters" in errors[0] and "longer than 5 characters" in errors[1]


def test_tenant_isolation(client: TestClient, ws: Workspace, keys: dict[str, str]) -> None:
    add_response(ws, "globex", "r-globex")
    add_response(ws, "acme", "r1")
    res = client.post(
        "/v1/feedback", json=thumbs("x", False, "r-globex"), headers=h(keys["acme"])
    ).json()
    assert res["accepted"] == 0 and "unknown response_id" in res["rejected"][0]["error"]
    client.post("/v1/feedback", json=thumbs("y", False), headers=h(keys["acme"]))
    assert client.get("/v1/feedback/stats", headers=h(keys["acme"])).json()["total"] == 1
    globex = client.get("/v1/feedback/stats", headers=h(keys["globex"])).json()
    assert globex["total"] == 0 and globex["tenant"] == "globex"


def test_metrics_counters_move(client: TestClient, ws: Workspace, keys: dict[str, str]) -> None:
    with session_scope(ws.database_url) as s:  # a version the registry knows keeps its name
        registry.set_alias(s, "acme", "production", "acme-assistant-v1")
    add_response(ws, "acme", "r1", version="acme-assistant-v1")
    client.post(
        "/v1/feedback",
        json={"events": [thumbs("a", False), thumbs("a", False), {"event_id": "bad"}]},
        headers=h(keys["acme"]),
    )
    client.post("/v1/feedback", json=thumbs("b", True), headers=h(keys["acme"]))
    client.post("/v1/feedback", json=thumbs("a", True), headers=h(keys["acme"]))  # conflict
    text = client.get("/metrics", headers=h(keys["acme_admin"])).text
    assert 'ct_llm_feedback_events_total{outcome="accepted",tenant="acme"} 2.0' in text
    assert 'ct_llm_feedback_events_total{outcome="duplicate",tenant="acme"} 1.0' in text
    assert 'ct_llm_feedback_events_total{outcome="rejected",tenant="acme"} 2.0' in text
    v1 = 'model_version="acme-assistant-v1",tenant="acme"'
    assert f"ct_llm_thumbs_down_events_total{{{v1}}} 1.0" in text
    assert f"ct_llm_thumbs_up_events_total{{{v1}}} 1.0" in text
    for reason in ("invalid", "conflict"):
        line = f'ct_llm_feedback_rejected_events_total{{reason="{reason}",tenant="acme"}} 1.0'
        assert line in text
    assert 'ct_llm_feedback_request_seconds_count{tenant="acme"} 3.0' in text


def test_chat_with_upstream_down_is_502(client: TestClient, keys: dict[str, str]) -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    err = assert_openai_error(
        client.post("/v1/chat/completions", json=body, headers=h(keys["acme"])), 502
    )
    assert err["code"] == "upstream_unreachable"
    err = assert_openai_error(
        client.post("/v1/chat/completions", json={**body, "stream": True}, headers=h(keys["acme"])),
        502,
    )
    assert_openai_error(
        client.post("/v1/chat/completions", json={"messages": []}, headers=h(keys["acme"])), 400
    )
    text = client.get("/metrics", headers=h(keys["acme_admin"])).text
    assert (
        'ct_llm_chat_requests_total{model_version="smollm2-135m-instruct",'
        'outcome="unreachable",tenant="acme"} 2.0' in text
    )


def test_status_shows_aliases_and_counts(
    client: TestClient, ws: Workspace, keys: dict[str, str]
) -> None:
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "acme", "production", "acme-assistant-v2")
        registry.set_alias(s, "acme", "canary", "acme-assistant-v3", weight=0.1)
    add_response(ws, "acme", "r1")
    st = client.get("/v1/status", headers=h(keys["acme"])).json()
    assert st["production"] == "acme-assistant-v2"
    assert st["canary"] == {"version": "acme-assistant-v3", "weight": 0.1}
    assert st["responses_logged"] == 1
    assert client.get("/v1/status", headers=h(keys["globex"])).json()["production"] is None


def test_unknown_route_is_an_openai_error(client: TestClient) -> None:
    assert_openai_error(client.get("/v1/nope"), 404)


def test_admin_endpoints_call_rollout(
    client: TestClient, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    def rollback(
        ws: Workspace, tenant: str, *, actor: str = "cli", server_url: str | None = None
    ) -> dict[str, Any]:
        calls.append(("rollback", tenant, actor, server_url))
        raise RegistryError("no canary or previous production to roll back to")

    def deploy_canary(
        ws: Workspace,
        tenant: str,
        version_id: str,
        *,
        weight: float | None = None,
        actor: str = "cli",
        server_url: str | None = None,
    ) -> dict[str, Any]:
        calls.append(("canary", tenant, version_id, weight, actor, server_url))
        return {"canary": version_id, "weight": weight}

    def promote(
        ws: Workspace,
        tenant: str,
        *,
        version_id: str | None = None,
        actor: str = "cli",
        server_url: list[str] | None = None,
    ) -> dict[str, Any]:
        calls.append(("promote", tenant, version_id, actor, server_url))
        return {"production": version_id or "the-canary"}

    for name, fake in (
        ("rollback", rollback),
        ("deploy_canary", deploy_canary),
        ("promote", promote),
    ):
        monkeypatch.setattr(admin_routes, name, fake)
    admin = h(keys["acme_admin"])
    r = client.post(
        "/v1/admin/canary", json={"version": "acme-assistant-v2", "weight": 0.2}, headers=admin
    )
    assert r.status_code == 200 and r.json() == {"canary": "acme-assistant-v2", "weight": 0.2}
    err = assert_openai_error(client.post("/v1/admin/rollback", headers=admin), 409)
    assert "roll back" in err["message"]
    assert_openai_error(
        client.post("/v1/admin/canary", json={"version": "v", "weight": 2}, headers=admin), 400
    )
    r = client.post("/v1/admin/promote", headers=admin)  # no body: the canary
    assert r.status_code == 200 and r.json() == {"production": "the-canary"}
    r = client.post("/v1/admin/promote", json={"version": "acme-assistant-v2"}, headers=admin)
    assert r.json() == {"production": "acme-assistant-v2"}
    assert_openai_error(
        client.post("/v1/admin/promote", json={"version": "v", "x": 1}, headers=admin), 400
    )
    actor = f"api:{keys['acme_admin'][:12]}"
    assert calls == [
        ("canary", "acme", "acme-assistant-v2", 0.2, actor, [DEAD_UPSTREAM]),
        ("rollback", "acme", actor, [DEAD_UPSTREAM]),
        ("promote", "acme", None, actor, [DEAD_UPSTREAM]),
        ("promote", "acme", "acme-assistant-v2", actor, [DEAD_UPSTREAM]),
    ]
