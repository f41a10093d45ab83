"""PII scrubbing of whole training rows, with a cache: the same texts recur across rows (the
system prompt of every gateway request, an answer that is both in a pair and in an SFT example),
and each distinct text is scrubbed once."""

from __future__ import annotations

from typing import Any

from ct_llm.curate.pii import scrub

_MESSAGE_COLUMNS = ("prompt", "chosen", "rejected", "completion")


class RowScrubber:
    def __init__(self, cache_size: int = 50_000) -> None:
        self.counts: dict[str, int] = {}
        self._cache: dict[str, tuple[str, dict[str, int]]] = {}
        self._cache_size = cache_size

    def text(self, text: str) -> str:
        hit = self._cache.get(text)
        if hit is None:
            hit = scrub(text)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # cheaper than LRU bookkeeping; the hot texts come back
            self._cache[text] = hit
        clean, found = hit
        # Counted per occurrence in the output, not per distinct text: the manifest says how
        # many placeholders the version holds.
        for kind, n in found.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        return clean

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for col in _MESSAGE_COLUMNS:
            if col in row:
                out[col] = [
                    {"role": m["role"], "content": self.text(m["content"])}
                    if isinstance(m.get("content"), str)
                    else m
                    for m in row[col]
                ]
        return out
