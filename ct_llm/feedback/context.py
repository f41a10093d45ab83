"""The prompt-context key: which feedback is about the same question.

Two answers are alternatives to each other (a regeneration, a second sample) when the model saw
the same messages before answering. Curation pairs votes and ratings within one context, so the
store keeps this key on every response and every feedback event (indexed with `seq`), and curation
streams events grouped by it without sorting or holding them in memory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def context_hash(messages: list[dict[str, Any]]) -> str:
    """32 hex chars over the roles and contents, in order; other message fields do not count."""
    canonical = json.dumps(
        [[m.get("role"), m.get("content")] for m in messages],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
