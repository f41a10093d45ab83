"""Validation of one training example; a failing example is dropped with its reason. Pure.

Reasons (the manifest counts them):
- `unknown_role`:    a prompt message whose role is not system / user / assistant / tool;
- `no_user_turn`:    a prompt without a non-empty user message;
- `empty_turn`:      an empty or whitespace-only message or answer;
- `too_long`:        a message or answer over `max_turn_chars`;
- `control_token`:   a chat-template marker (`<|im_end|>`, `[INST]`, ...) inside any text: once
                     templated it would forge turns;
- `broken_utf8`:     U+FFFD (what a lossy decode leaves) or a lone surrogate in any text;
- `identical_pair`:  chosen and rejected the same answer (after whitespace normalisation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

ROLES = frozenset({"system", "user", "assistant", "tool"})
_BROKEN = re.compile("[\ufffd\ud800-\udfff]")


class Validator:
    def __init__(
        self, *, max_turn_chars: int, control_tokens: Sequence[str], cache_size: int = 50_000
    ) -> None:
        self.max_turn_chars = max_turn_chars
        # One alternation for the markers and the broken characters, so every text is scanned
        # once however many markers there are.
        tokens = sorted(control_tokens, key=len, reverse=True)
        self._bad = re.compile("|".join([*map(re.escape, tokens), _BROKEN.pattern]))
        # A regex scan costs microseconds; most texts are ASCII without any marker's first
        # character and can skip it.
        self._first_chars = sorted({t[0] for t in tokens if t})
        # Texts recur across examples (a prompt shared by a pair and a KTO row): judge each once.
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    def check(self, kind: str, row: dict[str, Any]) -> str | None:
        """The first reason `row` is unusable, or None."""
        prompt = row["prompt"]
        if any(m.get("role") not in ROLES for m in prompt):
            return "unknown_role"
        if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
            return "no_user_turn"
        for text in _texts(kind, row):
            reason = self._check_text(text)
            if reason:
                return reason
        if kind == "dpo" and _same(row["chosen"], row["rejected"]):
            return "identical_pair"
        return None

    def _check_text(self, text: Any) -> str | None:
        if not isinstance(text, str):
            return "empty_turn"
        try:
            return self._cache[text]
        except KeyError:
            pass
        reason = self._judge(text)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[text] = reason
        return reason

    def _judge(self, text: str) -> str | None:
        if not text.strip():
            return "empty_turn"
        if len(text) > self.max_turn_chars:
            return "too_long"
        if text.isascii() and not any(c in text for c in self._first_chars):
            return None
        found = self._bad.search(text)
        if found is None:
            return None
        # The marker may have matched first although a broken character comes later: either
        # way the example goes; the reason names what was found first.
        return "broken_utf8" if _BROKEN.fullmatch(found.group()) else "control_token"


def _texts(kind: str, row: dict[str, Any]) -> Iterator[Any]:
    for m in row["prompt"]:
        yield m.get("content")
    for col in ("chosen", "rejected") if kind == "dpo" else ("completion",):
        for m in row[col]:
            yield m.get("content")


def _same(a: list[dict[str, str]], b: list[dict[str, str]]) -> bool:
    return [" ".join(m["content"].split()) for m in a] == [
        " ".join(m["content"].split()) for m in b
    ]
