"""Property-based fuzz of every route of the gateway (issue 17): whatever the method, path
parameters, query, headers, key and body, the answer is never a 500. A 5xx is allowed only
where it names a model server or database that could not do the work (the fake model server
here answers; the admin routes' vLLM client reaches no server, so a rollout that gets that far
is a 502 `serving_error`).

Bodies: arbitrary JSON, near-valid chat and feedback requests with one field wrong, and raw
bytes (not UTF-8, truncated JSON, huge numbers, deep nesting within the limits). Keys: none,
malformed, unknown, and real keys of each role of two tenants. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ct_llm.gateway.auth import ROLES, create_api_key
from ct_llm.workspace import Workspace

ALLOWED_5XX = {
    "upstream_error",
    "upstream_unreachable",
    "upstream_timeout",
    "serving_error",
    "overloaded",
}

leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
any_json = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=16,
)
CHAT_FIELDS = [
    "model",
    "messages",
    "stream",
    "max_tokens",
    "n",
    "temperature",
    "user",
    "top_k",
    "tools",
    "response_format",
    "stop",
    "seed",
    "logprobs",
    "ignore_eos",
]
FEEDBACK_FIELDS = [
    "event_id",
    "kind",
    "value",
    "response_id",
    "messages",
    "response",
    "user_id",
    "model_version",
    "conversation_id",
    "created_at",
    "metadata",
]


@st.composite
def near_valid(draw: st.DrawFn, fields: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": draw(st.text(max_size=20))}],
    }
    for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
        body[name] = draw(any_json)
    return body


raw_bytes = st.sampled_from(
    [
        b"",
        b"{",
        b"\xff\xfe\x00",
        b'{"events": [1e999]}',
        b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e999}',
        b"[" * 60 + b"]" * 60,
        b'{"version": "v1", "weight": 2}',
        b'{"version": null}',
        b"null",
        b'"just a string"',
    ]
)
bodies = (
    any_json.map(lambda b: json.dumps(b).encode())
    | near_valid(CHAT_FIELDS).map(lambda b: json.dumps(b).encode())
    | st.builds(
        lambda evs: json.dumps({"events": evs}).encode(),
        st.lists(near_valid(FEEDBACK_FIELDS), max_size=4),
    )
    | raw_bytes
)
queries = st.dictionaries(
    st.sampled_from(["days", "version", "limit", "x"]),
    st.text(max_size=8) | st.integers(-5, 10**6).map(str),
    max_size=2,
)


def app_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, from its OpenAPI schema (routers included)."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = [(m.upper(), path) for path, ops in paths.items() for m in ops]
    assert len(routes) >= 10, routes  # chat, feedback x2, status, metrics, healthz, admin x4
    return sorted(routes)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_route_answers_500_whatever_it_is_sent(
    client: TestClient, ws: Workspace, data: st.DataObject
) -> None:
    keys = _keys(ws)
    method, path = data.draw(st.sampled_from(app_routes(client)), label="route")
    key = data.draw(
        st.sampled_from([None, "", "Bearer", "Basic abc", "Bearer ctk_unknown", *keys]),
        label="authorization",
    )
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = key if key in ("", "Bearer") or " " in key else f"Bearer {key}"
    for name in ("x-ct-conversation-id", "x-ct-user-id"):
        if data.draw(st.booleans(), label=f"has {name}"):
            headers[name] = data.draw(
                st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
            )
    body = data.draw(bodies, label="body") if method == "POST" else None
    r = client.request(
        method, path, content=body, headers=headers, params=data.draw(queries, label="query")
    )
    assert r.status_code != 500, r.text
    if r.status_code > 500:
        assert r.json()["error"]["code"] in ALLOWED_5XX, r.text
    assert client.get("/healthz").status_code == 200


_KEYS: dict[str, list[str]] = {}


def _keys(ws: Workspace) -> list[str]:
    """A key of each role for two tenants, made once per workspace (hypothesis reruns the body
    of the test many times on one fixture)."""
    if ws.database_url not in _KEYS:
        _KEYS[ws.database_url] = [
            create_api_key(ws.database_url, tenant, role)
            for tenant in ("acme", "other")
            for role in ROLES
        ]
    return _KEYS[ws.database_url]
