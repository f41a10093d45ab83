"""POST /v1/feedback with hostile input: never a 500, and one bad event never costs the good ones
beside it (issue 17). Each case was reproduced against the API by a reviewer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace

JSON = {"Content-Type": "application/json"}


def good_event(event_id: str = "good") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "thumbs",
        "value": True,
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "response": "Paris.",
    }


def stored(ws: Workspace) -> dict[str, Any]:
    """event_id -> (value, metadata) of every stored event."""
    with session_scope(ws.database_url) as s:
        rows = s.execute(
            select(FeedbackEvent.event_id, FeedbackEvent.value, FeedbackEvent.metadata_)
        )
        return {eid: (value, meta) for eid, value, meta in rows}


def post_raw(client: TestClient, auth: dict[str, str], body: str) -> Any:
    """Post JSON text as written: Python's json.dumps cannot write `1e999` or 100k nestings."""
    return client.post("/v1/feedback", content=body.encode(), headers={**auth, **JSON})


@pytest.mark.parametrize(
    "created_at",
    [
        "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
    ],
)
def test_created_at_out_of_range_in_utc_rejects_that_event_only(
    client: TestClient, ws: Workspace, auth: dict[str, str], created_at: str
) -> None:
    bad = {**good_event("bad"), "created_at": created_at}
    r = client.post("/v1/feedback", json={"events": [bad, good_event()]}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0
    [rejected] = body["rejected"]
    assert rejected["index"] == 0 and rejected["event_id"] == "bad"
    assert "created_at" in rejected["error"] and "UTC" in rejected["error"]
    assert set(stored(ws)) == {"good"}


def test_created_at_out_of_range_alone_is_a_rejection_not_a_500(
    client: TestClient, ws: Workspace, auth: dict[str, str]
) -> None:
    # A single event object (no "events" list) is answered the same way as a batch of one.
    bad = {**good_event("bad"), "created_at": "9999-12-31T23:59:59-14:00"}
    r = client.post("/v1/feedback", json=bad, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (0, 0)
    assert [x["event_id"] for x in body["rejected"]] == ["bad"]
    assert stored(ws) == {}


@pytest.mark.parametrize(
    ("field", "fragment", "where"),
    [
        ("value", '"kind": "rating", "value": 1e999', "value"),
        (
            "metadata",
            '"kind": "thumbs", "value": true, "metadata": {"score": -1e999}',
            "metadata.score",
        ),
        (
            "nested metadata",
            '"kind": "thumbs", "value": true, "metadata": {"a": [1, {"b": 1e400}]}',
            "metadata.a.1.b",
        ),
        ("created_at", '"kind": "thumbs", "value": true, "created_at": 1e999', "created_at"),
    ],
)
def test_overflowing_numbers_reject_that_event_only(
    client: TestClient, ws: Workspace, auth: dict[str, str], field: str, fragment: str, where: str
) -> None:
    # 1e999 is valid JSON syntax, but no finite double: Python reads it as Infinity, which
    # SQLite would store and PostgreSQL's json type refuses.
    bad = '{"event_id": "bad", ' + fragment + ', "messages": [{"role": "user", "content": "q"}], '
    bad += '"response": "a"}'
    r = post_raw(client, auth, '{"events": [' + bad + ", " + json.dumps(good_event()) + "]}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1, field
    [rejected] = body["rejected"]
    assert rejected["index"] == 0 and rejected["event_id"] == "bad"
    assert "finite" in rejected["error"] and where in rejected["error"]
    rows = stored(ws)
    assert set(rows) == {"good"}
    value, meta = rows["good"]
    assert value is True and meta is None


def test_nan_and_infinity_literals_are_not_json(client: TestClient, auth: dict[str, str]) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        bad = '{"event_id": "x", "kind": "rating", "value": ' + literal + ', "response_id": "r"}'
        r = post_raw(client, auth, bad)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_json"


def nested(depth: int, inner: str = "1") -> str:
    """`depth` arrays around `inner`, as JSON text."""
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("endpoint", ["/v1/feedback", "/v1/chat/completions"])
def test_deeply_nested_json_is_a_400(
    client: TestClient, auth: dict[str, str], endpoint: str
) -> None:
    # 100k levels is ~200 kB, under the body size limit: without a depth check, the recursive
    # parser overflows the interpreter's stack (RecursionError -> 500).
    deep = nested(100_000)
    for body in (deep, '{"events": [{"metadata": {"m": ' + deep + "}}]}"):
        r = client.post(endpoint, content=body.encode(), headers={**auth, **JSON})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "json_too_deep" and "nest" in err["message"]


def test_depth_limit_boundary(client: TestClient, ws: Workspace, auth: dict[str, str]) -> None:
    from ct_llm.gateway.json_guard import MAX_JSON_DEPTH

    def batch(depth: int) -> str:
        # body object (1) > events list (2) > event (3) > metadata object (4) > arrays
        meta = '{"m": ' + nested(depth - 4) + "}"
        event = json.dumps(good_event("deep"))[:-1] + ', "metadata": ' + meta + "}"
        return '{"events": [' + event + "]}"

    at_limit = post_raw(client, auth, batch(MAX_JSON_DEPTH))
    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["accepted"] == 1
    over = post_raw(client, auth, batch(MAX_JSON_DEPTH + 1))
    assert over.status_code == 400 and over.json()["error"]["code"] == "json_too_deep"
    assert str(MAX_JSON_DEPTH) in over.json()["error"]["message"]


def test_brackets_inside_strings_are_text_not_nesting(
    client: TestClient, ws: Workspace, auth: dict[str, str]
) -> None:
    # A comment may well be full of brackets and escaped quotes; only structure counts.
    # In the JSON text: an escaped quote, brackets, an escaped backslash, then the real end.
    text = '\\"' + "[{" * 2000 + "\\\\"
    event = {**good_event("comment"), "kind": "comment", "value": "placeholder"}
    body = json.dumps({"events": [event]}).replace("placeholder", text)
    r = post_raw(client, auth, body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
