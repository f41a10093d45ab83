"""The gateway + feedback API on real ports against a real OpenAI-compatible upstream process
(a small canned FastAPI server), driven by the real `openai` client, with a real SQLite store."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select

from ct_llm.config import WorkspaceConfig
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.gateway.server import ApiServerThread
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration

UPSTREAM_PORT, GATEWAY_PORT, ORPHAN_GATEWAY_PORT, DEAD_PORT = 18201, 18202, 18203, 18219
UPSTREAM_ID = "cmpl-upstream-fixed"
# Called by the canned upstream before it answers 404 for a model named `gone-*` (an adapter
# unloaded while the request was on its way): lets a test move the alias at that very moment.
ON_GONE: list[Callable[[str], None]] = []
SYSTEM_PROMPT = "You are the Acme shop assistant."


def canned_upstream() -> FastAPI:
    """Answers like vLLM: `Echo: <last user message>`, as JSON or as SSE chunks."""
    app = FastAPI()
    app.state.requests = []

    @app.get("/health")
    def health() -> dict[str, str]:
        return {}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        app.state.requests.append(body)
        question = body["messages"][-1]["content"]
        if body["model"].startswith("gone-"):
            for hook in ON_GONE:
                hook(body["model"])
            message = f"The model `{body['model']}` does not exist."
            return JSONResponse({"object": "error", "message": message, "code": 404}, 404)
        if question == "fail":
            return JSONResponse({"error": {"message": "engine died", "type": "x"}}, 500)
        if question == "too long":
            return JSONResponse({"object": "error", "message": "max_tokens is too large"}, 400)
        pieces = ["Echo", ": ", question]
        base = {"id": UPSTREAM_ID, "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "".join(pieces)},
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
                }
            )

        async def sse() -> AsyncIterator[str]:
            for i, piece in enumerate(pieces):
                delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            last = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root: Path = tmp_path_factory.mktemp("api") / "ws"
    return Workspace.init(root, WorkspaceConfig(system_prompt=SYSTEM_PROMPT))


@pytest.fixture(scope="module")
def upstream() -> Iterator[ApiServerThread]:
    with ApiServerThread(canned_upstream(), port=UPSTREAM_PORT, health_path="/health") as srv:
        yield srv


@pytest.fixture(scope="module")
def gateway(ws: Workspace, upstream: ApiServerThread) -> Iterator[ApiServerThread]:
    with ApiServerThread(create_app(ws, upstream.url), port=GATEWAY_PORT) as srv:
        yield srv


@pytest.fixture(scope="module")
def keys(ws: Workspace) -> dict[str, str]:
    return {
        "acme": create_api_key(ws.database_url, "acme", "ingest"),
        "admin": create_api_key(ws.database_url, "acme", "admin"),
    }


def llm(gateway: ApiServerThread, key: str) -> openai.OpenAI:
    # No retries: a 502 must surface as one answer, not be retried into a slower one.
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def logged(ws: Workspace, response_id: str) -> ChatResponse:
    with session_scope(ws.database_url) as s:
        row = s.get(ChatResponse, response_id)
        assert row is not None, f"{response_id} was not logged"
        return row


def send_feedback(gateway: ApiServerThread, key: str, events: list[dict[str, Any]]) -> Any:
    r = httpx.post(
        gateway.url + "/v1/feedback",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_plain_completion_is_routed_rewritten_and_logged(
    ws: Workspace, upstream: ApiServerThread, gateway: ApiServerThread, keys: dict[str, str]
) -> None:
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "acme", "production", "acme-assistant-v1")
    raw = llm(gateway, keys["acme"]).chat.completions.with_raw_response.create(
        model="anything",
        messages=[{"role": "user", "content": "Where is my order?"}],
        extra_headers={"x-ct-conversation-id": "conv-42"},
    )
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-ct-") and completion.id != UPSTREAM_ID
    assert raw.headers["x-ct-model-version"] == "acme-assistant-v1"
    assert completion.choices[0].message.content == "Echo: Where is my order?"
    sent = upstream.server.config.app.state.requests[-1]
    assert sent["model"] == "acme-assistant-v1"
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}

    row = logged(ws, completion.id)
    assert (row.tenant, row.conversation_id, row.model_version) == (
        "acme",
        "conv-42",
        "acme-assistant-v1",
    )
    assert row.messages == sent["messages"] and row.response == "Echo: Where is my order?"
    assert row.latency_ms > 0

    res = send_feedback(
        gateway,
        keys["acme"],
        [{"event_id": "fb-plain", "kind": "thumbs", "value": False, "response_id": completion.id}],
    )
    assert res == {"accepted": 1, "duplicates": 0, "rejected": []}
    with session_scope(ws.database_url) as s:
        ev = s.scalars(select(FeedbackEvent).where(FeedbackEvent.event_id == "fb-plain")).one()
        assert (ev.model_version, ev.conversation_id) == ("acme-assistant-v1", "conv-42")


def test_streaming_relays_chunks_with_our_id(
    ws: Workspace, gateway: ApiServerThread, keys: dict[str, str]
) -> None:
    raw = llm(gateway, keys["acme"]).chat.completions.with_raw_response.create(
        model="x", messages=[{"role": "user", "content": "stream please"}], stream=True
    )
    chunks = list(raw.parse())
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-ct-")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream please"
    assert raw.headers["x-ct-model-version"]
    response_id = ids.pop()
    # Logged before [DONE] reached the client, so feedback right away finds it.
    res = send_feedback(
        gateway,
        keys["acme"],
        [
            {
                "event_id": "fb-stream",
                "kind": "edit",
                "value": "Here is your order status.",
                "response_id": response_id,
            }
        ],
    )
    assert res["accepted"] == 1
    assert logged(ws, response_id).response == "Echo: stream please"


def test_canary_share_and_sticky_conversations(
    ws: Workspace, gateway: ApiServerThread, keys: dict[str, str]
) -> None:
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "acme", "canary", "acme-assistant-v2", weight=1.0)
    client = llm(gateway, keys["acme"])
    raw = client.chat.completions.with_raw_response.create(
        model="x", messages=[{"role": "user", "content": "hi"}], user="shopper-7"
    )
    assert raw.headers["x-ct-model-version"] == "acme-assistant-v2"
    assert logged(ws, raw.parse().id).conversation_id == "shopper-7"
    with session_scope(ws.database_url) as s:
        registry.clear_alias(s, "acme", "canary")


def test_a_version_unloaded_on_the_way_is_routed_again_once(
    ws: Workspace, gateway: ApiServerThread, upstream: ApiServerThread
) -> None:
    key = create_api_key(ws.database_url, "swapper", "ingest")
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "swapper", "production", "gone-swapper-v1")

    def swap_finishes(model: str) -> None:  # the swap to v2 completes just as v1 goes away
        with session_scope(ws.database_url) as s:
            registry.set_alias(s, "swapper", "production", "swapper-assistant-v2")

    ON_GONE.append(swap_finishes)
    try:
        raw = llm(gateway, key).chat.completions.with_raw_response.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )
    finally:
        ON_GONE.clear()
    assert raw.headers["x-ct-model-version"] == "swapper-assistant-v2"
    assert raw.parse().choices[0].message.content == "Echo: hi"
    sent = [b["model"] for b in upstream.server.config.app.state.requests[-2:]]
    assert sent == ["gone-swapper-v1", "swapper-assistant-v2"]
    # Routed again to the same missing name: the 404 is the client's to see, not a loop.
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "swapper", "production", "gone-swapper-v3")
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        llm(gateway, key).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "hi"}]
        )


def test_a_refused_replica_is_skipped_and_its_requests_go_to_the_next(
    ws: Workspace, upstream: ApiServerThread, keys: dict[str, str]
) -> None:
    app = create_app(ws, [f"http://127.0.0.1:{DEAD_PORT}", upstream.url])
    with ApiServerThread(app, port=ORPHAN_GATEWAY_PORT) as gw:
        health = httpx.get(gw.url + "/healthz").json()
        assert health["upstream"] is True
        assert health["replicas"] == {f"http://127.0.0.1:{DEAD_PORT}": False, upstream.url: True}
        client = llm(gw, keys["acme"])
        for i in range(6):
            stream = i % 2 == 1
            out = client.chat.completions.create(
                model="x", messages=[{"role": "user", "content": f"q{i}"}], stream=stream
            )
            text = (
                "".join(c.choices[0].delta.content or "" for c in out)
                if stream
                else (out.choices[0].message.content)
            )
            assert text == f"Echo: q{i}"
        dead, live = app.state.gateway.upstreams.replicas
        # The last stream's relay releases its replica just after the client read [DONE].
        deadline = time.monotonic() + 5
        while live.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.served == 6 and live.in_flight == 0 and dead.in_flight == 0


def test_upstream_errors_are_openai_errors(gateway: ApiServerThread, keys: dict[str, str]) -> None:
    client = llm(gateway, keys["acme"])
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="x", messages=[{"role": "user", "content": "fail"}])
    assert e.value.status_code == 502 and "engine died" in e.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="x", messages=[{"role": "user", "content": "too long"}]
        )
    assert "max_tokens is too large" in bad.value.message


def test_upstream_down_is_502(ws: Workspace, keys: dict[str, str]) -> None:
    app = create_app(ws, f"http://127.0.0.1:{DEAD_PORT}")
    with ApiServerThread(app, port=ORPHAN_GATEWAY_PORT) as orphan:
        health = httpx.get(orphan.url + "/healthz").json()
        assert health == {
            "status": "ok",
            "db": True,
            "upstream": False,
            "replicas": {f"http://127.0.0.1:{DEAD_PORT}": False},
        }
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:
                llm(orphan, keys["acme"]).chat.completions.create(
                    model="x", messages=[{"role": "user", "content": "hi"}], stream=stream
                )
            assert e.value.status_code == 502
            body = e.value.response.json()
            assert body["error"]["code"] == "upstream_unreachable"


def test_metrics_after_traffic(
    ws: Workspace, gateway: ApiServerThread, keys: dict[str, str]
) -> None:
    with session_scope(ws.database_url) as s:
        registry.set_alias(s, "acme", "production", "acme-assistant-v1")
    answer = llm(gateway, keys["acme"]).chat.completions.create(
        model="x", messages=[{"role": "user", "content": "metrics"}]
    )
    send_feedback(
        gateway,
        keys["acme"],
        [
            {
                "event_id": f"fb-{answer.id}",
                "kind": "thumbs",
                "value": False,
                "response_id": answer.id,
            }
        ],
    )
    assert httpx.get(gateway.url + "/healthz").json()["upstream"] is True
    text = httpx.get(
        gateway.url + "/metrics", headers={"Authorization": f"Bearer {keys['admin']}"}
    ).text
    v1 = 'model_version="acme-assistant-v1"'
    assert f'ct_llm_chat_requests_total{{{v1},outcome="ok",tenant="acme"}}' in text
    assert f'ct_llm_chat_latency_seconds_count{{{v1},tenant="acme"}}' in text
    assert f'ct_llm_thumbs_down_events_total{{{v1},tenant="acme"}}' in text
    assert 'ct_llm_feedback_events_total{outcome="accepted",tenant="acme"}' in text
