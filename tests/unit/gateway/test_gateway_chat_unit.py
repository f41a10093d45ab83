"""Pure helpers of the chat proxy; the proxy itself runs against a real upstream in
tests/integration/test_api.py."""

from __future__ import annotations

import httpx

from ct_llm.gateway.chat import (
    conversation_key,
    new_response_id,
    upstream_error,
)


def test_conversation_key_precedence() -> None:
    assert conversation_key("c-1", {"user": "u"}) == "c-1"
    assert conversation_key(None, {"user": "u"}) == "u"
    a, b = conversation_key(None, {}), conversation_key(None, {})
    assert a != b and len(a) == 32


def test_response_ids_are_ours_and_unique() -> None:
    ids = {new_response_id() for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("chatcmpl-ct-") for i in ids)


def test_upstream_errors_map_to_openai_errors() -> None:
    bad = upstream_error(httpx.Response(400, json={"error": {"message": "max_tokens too big"}}))
    assert (bad.status, bad.message) == (400, "max_tokens too big")
    old = upstream_error(httpx.Response(404, json={"object": "error", "message": "no model"}))
    assert (old.status, old.message) == (404, "no model")
    down = upstream_error(httpx.Response(500, text="boom"))
    assert down.status == 502 and "HTTP 500" in down.message and down.type == "upstream_error"
