"""Identity comes from keys and from what the gateway logged, never from a feedback body
(README "Trust model", issue 17): the end user, model version and conversation of an event about
a logged response are the log's; trust is the `reviewer` key role, not a user id pattern."""

from __future__ import annotations

from typing import Any

import pytest
from fake_model_server import FakeModelServer
from fastapi.testclient import TestClient
from sqlalchemy import select

from ct_llm.gateway.auth import create_api_key
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent
from ct_llm.workspace import Workspace


def served(
    client: TestClient, auth: dict[str, str], headers: dict[str, str] | None = None, **extra: Any
) -> str:
    """One chat through the gateway; its response_id."""
    body = {"model": "m", "messages": [{"role": "user", "content": "Return window?"}], **extra}
    r = client.post("/v1/chat/completions", json=body, headers={**auth, **(headers or {})})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def thumbs(event_id: str, response_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "kind": "thumbs", "value": False, "response_id": response_id}


def stored(ws: Workspace) -> dict[str, FeedbackEvent]:
    with session_scope(ws.database_url) as s:
        rows = list(s.scalars(select(FeedbackEvent)))
        s.expunge_all()
    return {r.event_id: r for r in rows}


def post(client: TestClient, auth: dict[str, str], events: list[dict[str, Any]]) -> Any:
    r = client.post("/v1/feedback", json={"events": events}, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_event_about_a_logged_response_is_the_logged_users(
    client: TestClient, ws: Workspace, auth: dict[str, str]
) -> None:
    rid = served(client, auth, user="alice")
    with session_scope(ws.database_url) as s:
        log = s.get(ChatResponse, rid)
        assert log is not None and log.user_id == "alice"
        version, conversation, key_prefix = log.model_version, log.conversation_id, log.key_prefix
    assert key_prefix == auth["Authorization"].removeprefix("Bearer ")[:12]
    # Left out, or repeated as logged: both are the log's.
    same = {"user_id": "alice", "model_version": version, "conversation_id": conversation}
    body = post(client, auth, [thumbs("bare", rid), {**thumbs("same", rid), **same}])
    assert body["accepted"] == 2 and body["rejected"] == []
    for event in stored(ws).values():
        assert (event.user_id, event.model_version) == ("alice", version)
        assert event.conversation_id == conversation
        assert event.key_prefix == key_prefix and event.trusted is False


@pytest.mark.parametrize(
    "claim",
    [
        {"user_id": "mallory"},
        {"user_id": "agent-mallory"},
        {"model_version": "acme-assistant-v9"},
        {"conversation_id": "someone-elses"},
    ],
)
def test_a_body_that_contradicts_the_log_costs_that_event_only(
    client: TestClient, ws: Workspace, auth: dict[str, str], claim: dict[str, str]
) -> None:
    rid = served(client, auth, user="alice")
    body = post(client, auth, [{**thumbs("lie", rid), **claim}, thumbs("honest", rid)])
    assert body["accepted"] == 1
    [rejected] = body["rejected"]
    [(field, value)] = claim.items()
    assert rejected["index"] == 0 and rejected["event_id"] == "lie"
    assert f"{field} '{value}' contradicts the logged response {rid}" in rejected["error"]
    assert set(stored(ws)) == {"honest"}


def test_the_user_header_names_the_end_user(
    client: TestClient, ws: Workspace, auth: dict[str, str]
) -> None:
    rid = served(client, auth, user="ignored", headers={"x-ct-user-id": "bob"})
    body = post(client, auth, [{**thumbs("e", rid), "user_id": "ignored"}])
    assert "contradicts" in body["rejected"][0]["error"]
    post(client, auth, [thumbs("e2", rid)])
    assert stored(ws)["e2"].user_id == "bob"


def test_a_user_no_store_can_hold_is_refused_before_the_model_answers(
    client: TestClient, auth: dict[str, str], model_server: FakeModelServer
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "user": "a\x00b"}
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_user"
    assert model_server.requests == []


def test_a_reviewer_key_is_trusted_and_names_its_reviewer(
    client: TestClient, ws: Workspace, auth: dict[str, str], tenant: str
) -> None:
    rid = served(client, auth, user="alice")
    reviewer = {"Authorization": f"Bearer {create_api_key(ws.database_url, tenant, 'reviewer')}"}
    edit = {
        "event_id": "fix",
        "kind": "edit",
        "value": "60 days.",
        "response_id": rid,
        "user_id": "agent-anna",
    }
    assert post(client, reviewer, [edit])["accepted"] == 1
    # The same claim from the ingest key is the end user's, and a lie.
    assert "contradicts" in post(client, auth, [{**edit, "event_id": "x"}])["rejected"][0]["error"]
    event = stored(ws)["fix"]
    assert event.trusted is True and event.user_id == "agent-anna"
    assert event.key_prefix == reviewer["Authorization"].removeprefix("Bearer ")[:12]


def test_a_response_without_a_logged_user_keeps_the_claim(
    client: TestClient, ws: Workspace, auth: dict[str, str]
) -> None:
    """Nothing to contradict: the claim is stored as a claim (curation caps it like any user;
    rollout decisions count one vote per response for it)."""
    rid = served(client, auth)
    assert post(client, auth, [{**thumbs("e", rid), "user_id": "carol"}])["accepted"] == 1
    assert stored(ws)["e"].user_id == "carol"
