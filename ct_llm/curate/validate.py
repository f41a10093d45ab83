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
    def __init__(self, *, max_turn_chars: int, control_tokens: Sequence[str]) -> None:
        self.max_turn_chars = max_turn_chars
        # One alternation, so every text is scanned once however many markers there are.
        tokens = sorted(control_tokens, key=len, reverse=True)
        self._control = re.compile("|".join(map(re.escape, tokens))) if tokens else None

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
        if not isinstance(text, str) or not text.strip():
            return "empty_turn"
        if len(text) > self.max_turn_chars:
            return "too_long"
        if self._control is not None and self._control.search(text):
            return "control_token"
        if _BROKEN.search(text):
            return "broken_utf8"
        return None


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
