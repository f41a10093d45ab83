"""The reviewer's reproduction of issue 17: one chat in OpenAI's content-part format and one vote
on it made every later `ct-llm curate` of the tenant fail (AttributeError: 'list' object has no
attribute 'strip'). Curation's own handling of such rows is tests/unit/curate/
test_curate_stored_rows.py; this is the path through the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ct_llm.curate.dataset import curate_dataset
from ct_llm.curate.layout import read_rows
from ct_llm.workspace import Workspace


def test_chat_in_content_parts_then_a_vote_curates(
    client: TestClient, ws: Workspace, auth: dict[str, str], tenant: str
) -> None:
    parts = [{"type": "text", "text": "Capital of"}, {"type": "text", "text": "France?"}]
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": parts}], "user": "u1"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    vote = {"event_id": "v1", "kind": "thumbs", "value": True, "response_id": r.json()["id"]}
    assert client.post("/v1/feedback", json=vote, headers=auth).json()["accepted"] == 1

    for _ in range(2):  # "for good": the second run must work as well as the first
        counts = curate_dataset(ws, tenant, dry_run=True).manifest["counts"]
        assert sum(n for kind in counts.values() for n in kind.values()) == 1, counts
    done = curate_dataset(ws, tenant)
    assert done.path is not None
    rows = [*read_rows(done.path, "kto", "train"), *read_rows(done.path, "kto", "test")]
    [row] = rows
    assert row["prompt"][-1] == {"role": "user", "content": "Capital of\nFrance?"}
