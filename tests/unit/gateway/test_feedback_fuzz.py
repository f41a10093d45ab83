"""Property-based fuzzing of POST /v1/feedback on a real database (SQLite and PostgreSQL).

Thousands of generated bodies: arbitrary JSON, near-valid events with one field wrong, valid
events with hostile strings (NUL bytes, lone surrogates escaped in JSON, huge numbers), repeated
ids. The properties: never a 5xx; a 200 accounts for every item (accepted + duplicates + rejected
= items, rejected indexes in range); the server still answers /healthz afterwards; and every
event the API accepted is in the database.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ct_llm.store.db import session_scope
from ct_llm.store.models import FeedbackEvent
from ct_llm.workspace import Workspace

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and Infinity too: Python writes them, strict JSON has no such thing
    | st.text(max_size=40)
)
any_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_text = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ufeff", "<|im_end|>", "\u202e"]),
    max_size=30,
).map("".join)
event_ids = st.text(min_size=1, max_size=8, alphabet="abcdef0123456789")  # small: collisions

values = {
    "thumbs": st.booleans() | any_json,
    "rating": st.integers(min_value=-3, max_value=8) | any_json,
    "edit": hostile_text | any_json,
    "regenerate": st.none() | hostile_text | any_json,
    "comment": hostile_text | any_json,
}


@st.composite
def near_valid_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([*values, "bogus"]))
    event: dict[str, Any] = {
        "event_id": draw(event_ids),
        "kind": kind,
        "value": draw(values.get(kind, any_json)),
        "messages": [
            {
                "role": draw(st.sampled_from(["user", "system", "robot"])),
                "content": draw(hostile_text),
            }
        ],
        "response": draw(hostile_text),
    }
    # Now and then: one field missing, of the wrong type, or an unknown one.
    mutation = draw(st.sampled_from(["none", "drop", "retype", "extra"]))
    field = draw(st.sampled_from(sorted(event)))
    if mutation == "drop":
        del event[field]
    elif mutation == "retype":
        event[field] = draw(any_json)
    elif mutation == "extra":
        event[draw(st.text(min_size=1, max_size=12))] = draw(any_json)
    return event


bodies = (
    st.builds(lambda evs: {"events": evs}, st.lists(near_valid_event(), max_size=8))
    | near_valid_event()
    | any_json
    | st.builds(lambda evs: {"events": evs}, st.lists(any_json, max_size=5))
)


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_feedback_endpoint_never_fails_on_any_body(
    client: TestClient, keys: dict[str, str], ws: Workspace, body: Any
) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    r = client.post(
        "/v1/feedback",
        content=raw,
        headers={"Authorization": f"Bearer {keys['acme']}", "Content-Type": "application/json"},
    )
    assert r.status_code < 500, r.text
    answer = r.json()
    if r.status_code != 200:
        assert answer["error"]["message"]
        return
    items = body["events"] if isinstance(body, dict) and "events" in body else [body]
    assert answer["accepted"] + answer["duplicates"] + len(answer["rejected"]) == len(items)
    assert all(0 <= rej["index"] < len(items) and rej["error"] for rej in answer["rejected"])


def test_hostile_strings_are_stored_or_refused_never_a_500(
    client: TestClient, keys: dict[str, str], ws: Workspace
) -> None:
    auth = {"Authorization": f"Bearer {keys['acme']}", "Content-Type": "application/json"}
    # A lone surrogate is valid JSON (an escape) but not encodable text, and PostgreSQL text
    # cannot hold NUL: both are refused item by item, on every backend alike.
    ex = '"messages": [{"role": "user", "content": "hi"}], "response": "ok"'
    raw = (
        f'{{"events": [{{"event_id": "lone", "kind": "comment", "value": "a \\ud800 b", {ex}}}, '
        f'{{"event_id": "nul", "kind": "comment", "value": "nul \\u0000 inside", {ex}}}, '
        f'{{"event_id": "fine", "kind": "comment", "value": "caf\\u00e9 \\u202e ok", {ex}}}]}}'
    )
    r = client.post("/v1/feedback", content=raw.encode(), headers=auth)
    assert r.status_code == 200, r.text
    answer = r.json()
    reasons = {rej["index"]: rej["error"] for rej in answer["rejected"]}
    assert set(reasons) == {0, 1} and answer["accepted"] == 1
    assert "surrogate" in reasons[0] and "NUL" in reasons[1]
    # NaN is not JSON: the whole body is refused with a reason, not stored as a surprise.
    r = client.post("/v1/feedback", content=b'{"events": [NaN]}', headers=auth)
    assert r.status_code == 400 and "NaN" in r.json()["error"]["message"]
    assert client.get("/healthz").json()["db"] is True
    with session_scope(ws.database_url) as s:
        stored = s.scalar(select(func.count()).select_from(FeedbackEvent))
    assert stored == 1
