"""Train / held-out split by conversation, so no conversation leaks into both sides."""

from __future__ import annotations

import hashlib


def heldout_bucket(conversation_id: str, seed: int) -> float:
    """A conversation's place in [0, 1): held out when below the held-out fraction. Depends only
    on the id and the seed, so adding data never moves an old conversation across the split."""
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
