"""Pairing rules: feedback records -> training examples. Pure functions over plain data.

Rules (the walking skeleton's; issue "curation" adds more):
- `edit`   -> DPO pair: the agent's corrected text is `chosen`, the served answer `rejected`.
- `thumbs` -> KTO example: `completion` = the served answer, `label` = the vote.
  Conflicting votes on one response resolve to the latest vote (by event order), so a user who
  corrects a mis-click is believed.
Output rows use TRL's conversational format: `prompt` is a message list, completions are
single-message lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback event joined with the answer it is about."""

    seq: int
    event_id: str
    kind: str
    value: Any
    messages: list[dict[str, str]]
    response: str
    conversation_id: str | None = None
    response_id: str | None = None
    user_id: str | None = None


@dataclass
class CurationStats:
    drops: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


def _prompt(rec: FeedbackRecord) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in rec.messages]


def _conversation(rec: FeedbackRecord) -> str:
    return rec.conversation_id or rec.response_id or rec.event_id


def _has_user_turn(rec: FeedbackRecord) -> bool:
    return any(m.get("role") == "user" and str(m.get("content", "")).strip() for m in rec.messages)


def build_preference_pairs(
    records: list[FeedbackRecord], stats: CurationStats | None = None
) -> list[dict[str, Any]]:
    stats = stats or CurationStats()
    pairs = []
    for rec in records:
        if rec.kind != "edit":
            continue
        chosen = str(rec.value or "").strip()
        if not _has_user_turn(rec):
            stats.drop("edit_without_user_turn")
        elif not chosen:
            stats.drop("edit_empty")
        elif chosen == rec.response.strip():
            stats.drop("edit_identical_to_response")
        else:
            pairs.append(
                {
                    "prompt": _prompt(rec),
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rec.response}],
                    "event_id": rec.event_id,
                    "conversation_id": _conversation(rec),
                }
            )
    return pairs


def build_unpaired_examples(
    records: list[FeedbackRecord], stats: CurationStats | None = None
) -> list[dict[str, Any]]:
    stats = stats or CurationStats()
    latest: dict[str, FeedbackRecord] = {}
    for rec in sorted((r for r in records if r.kind == "thumbs"), key=lambda r: r.seq):
        if not isinstance(rec.value, bool):
            stats.drop("thumbs_not_bool")
            continue
        if not _has_user_turn(rec):
            stats.drop("thumbs_without_user_turn")
            continue
        key = rec.response_id or f"{rec.event_id}"
        if key in latest:
            stats.drop("thumbs_superseded_by_later_vote")
        latest[key] = rec
    return [
        {
            "prompt": _prompt(rec),
            "completion": [{"role": "assistant", "content": rec.response}],
            "label": bool(rec.value),
            "event_id": rec.event_id,
            "conversation_id": _conversation(rec),
        }
        for rec in latest.values()
    ]
