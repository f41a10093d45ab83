"""Train / held-out split by conversation, so no conversation leaks into both sides."""

from __future__ import annotations

import hashlib
from typing import Any


def heldout_bucket(conversation_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_conversation(
    rows: list[dict[str, Any]], heldout_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Deterministic: a conversation's side depends only on its id and the seed, so adding data
    never moves an old conversation from held-out into training."""
    train, heldout = [], []
    for row in rows:
        side = heldout if heldout_bucket(row["conversation_id"], seed) < heldout_fraction else train
        side.append(row)
    return train, heldout
