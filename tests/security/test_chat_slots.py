"""A tenant's concurrent-chat slot (gateway/quotas.py) is given back however the chat ends:
answered, streamed, refused, failed upstream, or abandoned by a client that left before the
first byte of its stream. A slot kept by mistake would lock the tenant out after 64 chats."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from fake_model_server import FakeModelServer
from fastapi.testclient import TestClient

from ct_llm.gateway.chat import _RelayResponse

QUESTION = [{"role": "user", "content": "Capital of France?"}]


def _sse(request: httpx.Request) -> httpx.Response:
    chunk = {"choices": [{"index": 0, "delta": {"content": "Paris."}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def test_every_way_a_chat_ends_gives_the_slot_back(
    client: TestClient, auth: dict[str, str], model_server: FakeModelServer
) -> None:
    state = client.app.state.gateway  # type: ignore[attr-defined]
    ask = {"messages": QUESTION}
    assert client.post("/v1/chat/completions", json=ask, headers=auth).status_code == 200
    assert client.post("/v1/chat/completions", json={"x": 1}, headers=auth).status_code == 400
    assert client.post("/v1/chat/completions", content=b"{", headers=auth).status_code == 400
    # The app's pooled client (opened at start-up) is what the proxy uses.
    state.http = httpx.AsyncClient(transport=httpx.MockTransport(_sse))
    r = client.post("/v1/chat/completions", json={**ask, "stream": True}, headers=auth)
    assert r.status_code == 200 and "Paris." in r.text
    state.http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda req: httpx.Response(500, json={"error": "boom"}))
    )
    assert client.post("/v1/chat/completions", json=ask, headers=auth).status_code == 502
    assert state.quotas.in_flight("acme") == 0
    assert sum(u.in_flight for u in state.upstreams.replicas) == 0


def test_a_stream_abandoned_before_its_first_byte_is_cleaned_up() -> None:
    cleaned: list[int] = []
    started: list[bool] = []

    async def body() -> Any:
        started.append(True)
        yield b"data: [DONE]\n\n"

    async def cleanup() -> None:
        cleaned.append(1)

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(_: Any) -> None:
        await asyncio.sleep(0)

    response = _RelayResponse(body(), cleanup=cleanup, media_type="text/event-stream")
    scope = {"type": "http", "asgi": {"spec_version": "2.3"}, "method": "POST"}
    asyncio.run(response(scope, gone, send))
    assert cleaned == [1]
