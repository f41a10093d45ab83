"""A stand-in for vLLM's chat endpoint, reached through httpx.MockTransport (no socket)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class FakeModelServer:
    """An OpenAI-compatible chat endpoint that records each request and answers `answer`."""

    answer: str = "Paris."
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # /health, /v1/models: the server is up
            return httpx.Response(200, json={})
        body = json.loads(request.content)
        self.requests.append(body)
        return httpx.Response(
            200,
            json={
                "id": "cmpl-upstream",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.answer},
                        "finish_reason": "stop",
                    }
                ],
            },
        )
