"""The attack issue 17 reproduced: an ingest key sends 96 "corrections" as `agent-mallory`, a
name that a `trusted_users: ["agent-*"]` pattern used to exempt from the cap and the quarantine
(it ended as 61% of the next version's DPO rows, while the manifest said 1.3%). Trust is the
reviewer key role now: the same events are an ordinary user's, and every share in the manifest
counts every row."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from ct_llm.config import WorkspaceConfig
from ct_llm.curate.dataset import curate_dataset
from ct_llm.feedback.ingest import ingest_events
from ct_llm.feedback.sender import Sender
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

TENANT = "acme"


# Shop words to draw texts from (split by re: a word list literal would be 23 lines).
WORDS = re.findall(
    r"\w+",
    "order parcel refund invoice warranty voucher courier account password address basket "
    "discount delivery exchange receipt size colour stock store label tracking payment card",
)


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def edit(rng: random.Random, event_id: str, user: str) -> dict[str, Any]:
    """A correction of its own question: distinct enough that dedup keeps every one."""
    return {
        "event_id": event_id,
        "kind": "edit",
        "value": f"{words(rng, 12)}.",
        "messages": [{"role": "user", "content": f"{words(rng, 8)}?"}],
        "response": f"{words(rng, 10)}.",
        "user_id": user,
    }


def test_a_user_id_that_looks_like_an_agent_is_capped_like_anyone(tmp_path, database_url):
    ws = Workspace.init(tmp_path / "ws", WorkspaceConfig(tenant=TENANT, database_url=database_url))
    rng = random.Random(17)
    customers = [edit(rng, f"c{i}", f"customer-{i}") for i in range(60)]
    agents = [edit(rng, f"a{i}", "agent-anna") for i in range(20)]
    mallory = [edit(rng, f"m{i}", "agent-mallory") for i in range(96)]
    with session_scope(ws.database_url) as s:
        ingest_events(s, Sender(TENANT, "ctk_ingest01"), customers + mallory)
        ingest_events(s, Sender(TENANT, "ctk_review01", trusted=True), agents)
    m = curate_dataset(ws, TENANT).manifest

    cap = m["user_cap"]
    # Mallory is an end user: quarantined for volume, or at most capped; never exempt.
    held = {q["user"] for q in m["quarantined"]}
    assert "agent-mallory" in held or cap["rows_trimmed"] > 0, m
    # 60 customers and the reviewer, 2 rows (edit pair + SFT) per edit; mallory adds at most
    # the per-user cap.
    total = sum(c["train"] + c["test"] for c in m["counts"].values())
    assert 2 * (60 + 20) <= total <= 2 * (60 + 20) + cap["rows_per_user"], m["counts"]
    # The reviewer's 40 rows are the largest identity, and the share says so.
    assert cap["reviewer_rows"] == 40 and cap["largest_user_is_reviewer"] is True
    assert cap["largest_user_share"] == pytest.approx(40 / total, abs=1e-4)
    assert cap["largest_capped_user_share"] <= cap["max_user_share"] + 1e-9


def test_trusted_user_patterns_are_refused_with_the_way_to_trust_someone():
    with pytest.raises(ValueError, match="--role reviewer"):
        WorkspaceConfig.model_validate({"curate": {"guards": {"trusted_users": ["agent-*"]}}})
