"""The gateway's edge: limits every request meets before routing, authentication or parsing.

`BodyLimit` refuses a body over `api.max_body_bytes` on every route with 413: at once when its
Content-Length says so, and as soon as the bytes received pass the limit when it does not (chunked
bodies carry no length, and a client may lie). Without it a route that takes a parsed body read
and parsed all of it before its key was checked (issue 17: 200 MB to /v1/admin/canary, +800 MB
resident, then a 400).
"""

from __future__ import annotations

import json
from typing import Any

from ct_llm.gateway.auth import error_body

Scope = dict[str, Any]


class BodyLimit:
    """Reads the body, at most `max_bytes` of it, before the app sees the request, and hands
    it on whole. Every route takes JSON bodies that fit in memory anyway; reading first is what
    lets the limit hold on routes whose framework parses the body before the key is checked."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "Content-Length is not a number", "bad_request")
                return
            if int(declared) > self.max_bytes:
                await _refuse(
                    send, 413, self._message(f"is {int(declared)} bytes"), "body_too_large"
                )
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, self._message("is over the limit"), "body_too_large")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # a streaming answer listens for the disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    def _message(self, what: str) -> str:
        return (
            f"body {what}; the limit is {self.max_bytes} bytes (api.max_body_bytes); "
            "split the request"
        )


async def _refuse(send: Any, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(message, "invalid_request_error", code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
