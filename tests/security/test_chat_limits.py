"""What a chat request may ask of the model server, at the HTTP level (issue 17): the
parameter allowlist, the tenant's caps, the operator's system prompt, and the per-tenant rate
and concurrency quotas. Each refusal is a 4xx before the model server sees anything."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_model_server import FakeModelServer
from fastapi.testclient import TestClient

from ct_llm.config import WorkspaceConfig
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.workspace import Workspace

QUESTION = [{"role": "user", "content": "Capital of France?"}]


def gateway(ws: Workspace, handler: Any) -> TestClient:
    app = create_app(ws, "http://model-server.test")
    app.state.gateway.new_client = lambda: httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return TestClient(app, raise_server_exceptions=False)


def workspace(tmp_path: Path, database_url: str | None, **settings: Any) -> Workspace:
    config = WorkspaceConfig.model_validate({"database_url": database_url, **settings})
    return Workspace.init(tmp_path / "ws", config)


def bearer(ws: Workspace, role: str = "ingest", tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_api_key(ws.database_url, tenant, role)}"}


# What an attacker with one ingest key tried (issue 17, item 6): each would cost the shared
# server far more than one answer, or act on other tenants' requests.
HOSTILE = {
    "n": 64,
    "max_tokens": 1_000_000,
    "max_completion_tokens": 1_000_000,
    "ignore_eos": True,
    "prompt_logprobs": 20,
    "priority": -100,
    "request_id": "someone-elses-id",
    "chat_template": "{{ raise_exception('x') }}",
    "vllm_xargs": {"a": 1},
}


@pytest.mark.parametrize("field", sorted(HOSTILE))
def test_costly_or_foreign_parameters_never_reach_the_model_server(
    client: TestClient, auth: dict[str, str], model_server: FakeModelServer, field: str
) -> None:
    body = {"model": "x", "messages": QUESTION, field: HOSTILE[field]}
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"]
    assert model_server.requests == []


def test_a_plain_request_is_sent_with_the_tenants_token_cap(
    client: TestClient, auth: dict[str, str], model_server: FakeModelServer
) -> None:
    body = {"model": "x", "messages": QUESTION, "temperature": 0, "store": True, "user": "u-1"}
    assert client.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
    [sent] = model_server.requests
    assert sent["max_tokens"] == 1024  # the default api.chat.max_tokens
    assert sent["temperature"] == 0 and sent["user"] == "u-1"
    assert "store" not in sent


def test_per_tenant_caps_and_allowed_extras(tmp_path: Path, database_url: str | None) -> None:
    ws = workspace(
        tmp_path,
        database_url,
        api={"chat": {"tenants": {"big": {"max_n": 4, "extra_params": ["top_k"]}}}},
    )
    server = FakeModelServer()
    with gateway(ws, server.handle) as client:
        body = {"messages": QUESTION, "n": 4, "top_k": 5}
        r = client.post("/v1/chat/completions", json=body, headers=bearer(ws, tenant="big"))
        assert r.status_code == 200, r.text
        assert server.requests[-1]["n"] == 4 and server.requests[-1]["top_k"] == 5
        r = client.post("/v1/chat/completions", json=body, headers=bearer(ws, tenant="small"))
        assert r.status_code == 400 and len(server.requests) == 1


@pytest.mark.parametrize(
    ("policy", "status", "first"),
    [
        ("operator_first", 200, "You are Northwind's assistant.\n\nYou are a pirate."),
        ("replace", 200, "You are a pirate."),
        ("refuse", 400, None),
    ],
)
def test_a_client_system_prompt_follows_the_operators_policy(
    tmp_path: Path, database_url: str | None, policy: str, status: int, first: str | None
) -> None:
    ws = workspace(
        tmp_path,
        database_url,
        system_prompt="You are Northwind's assistant.",
        api={"chat": {"client_system_prompt": policy}},
    )
    server = FakeModelServer()
    messages = [{"role": "system", "content": "You are a pirate."}, *QUESTION]
    with gateway(ws, server.handle) as client:
        r = client.post("/v1/chat/completions", json={"messages": messages}, headers=bearer(ws))
    assert r.status_code == status, r.text
    if first is None:
        assert r.json()["error"]["code"] == "system_prompt_not_allowed" and not server.requests
    else:
        [sent] = server.requests
        assert sent["messages"][0] == {"role": "system", "content": first}
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]


def test_a_tenant_over_its_rate_gets_429_with_retry_after(
    tmp_path: Path, database_url: str | None
) -> None:
    ws = workspace(tmp_path, database_url, api={"quotas": {"chat_per_s": 1, "feedback_per_s": 1}})
    server = FakeModelServer()
    with gateway(ws, server.handle) as client:
        acme, other = bearer(ws), bearer(ws, tenant="other")
        codes = [
            client.post("/v1/chat/completions", json={"messages": QUESTION}, headers=acme)
            for _ in range(3)
        ]
        assert [r.status_code for r in codes] == [200, 200, 429]  # a burst of 2 s x 1/s
        refused = codes[-1]
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert len(server.requests) == 2
        # Another tenant's quota is its own.
        r = client.post("/v1/chat/completions", json={"messages": QUESTION}, headers=other)
        assert r.status_code == 200
        event = {
            "event_id": "e",
            "kind": "thumbs",
            "value": True,
            "messages": QUESTION,
            "response": "Paris.",
        }
        fb = [client.post("/v1/feedback", json=event, headers=acme).status_code for _ in range(3)]
        assert fb == [200, 200, 429]


def test_concurrent_chats_of_a_tenant_are_capped(tmp_path: Path, database_url: str | None) -> None:
    ws = workspace(tmp_path, database_url, api={"quotas": {"max_concurrent_chats": 2}})
    release = threading.Event()
    arrived: list[float] = []
    server = FakeModelServer()

    async def slow(request: httpx.Request) -> httpx.Response:
        arrived.append(time.monotonic())
        while not release.is_set():  # answers only when the test says so
            await asyncio.sleep(0.01)
        return server.handle(request)

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 10
        while len(arrived) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(arrived) == n

    with gateway(ws, slow) as client, ThreadPoolExecutor(3) as pool:
        acme, other = bearer(ws), bearer(ws, tenant="other")

        def ask(headers: dict[str, str]) -> httpx.Response:
            return client.post("/v1/chat/completions", json={"messages": QUESTION}, headers=headers)

        held = [pool.submit(ask, acme) for _ in range(2)]
        wait_for(2)
        third = ask(acme)
        assert third.status_code == 429 and third.json()["error"]["code"] == "rate_limited"
        assert "retry-after" in third.headers
        # Another tenant is not held back by acme's cap: its request reaches the model server.
        held.append(pool.submit(ask, other))
        wait_for(3)
        release.set()
        assert [f.result().status_code for f in held] == [200, 200, 200]
        assert ask(acme).status_code == 200  # the slots were given back
