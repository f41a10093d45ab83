"""Deterministic hash buckets: the train / held-out split by conversation (no conversation leaks
into both sides), and the seeded samples of golden and replay rows."""

from __future__ import annotations

import hashlib


def bucket(key: str, seed: int) -> float:
    """A key's place in [0, 1), fixed by the key and the seed alone (no RNG state, no Python
    `hash()`), so runs, processes and growing data all agree."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def heldout_bucket(conversation_id: str, seed: int) -> float:
    """A conversation is held out when this is below the held-out fraction; adding data never
    moves an old conversation across the split."""
    return bucket(conversation_id, seed)
