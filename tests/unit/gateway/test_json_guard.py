"""The request-body depth check, on bytes (gateway/json_guard.py). Pure."""

from __future__ import annotations

import json

import pytest

from ct_llm.gateway.json_guard import MAX_JSON_DEPTH, nests_deeper_than


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize("limit", [1, 8, MAX_JSON_DEPTH])
def test_depth_is_counted_exactly(limit: int) -> None:
    assert not nests_deeper_than(nested(limit), limit)
    assert nests_deeper_than(nested(limit + 1), limit)
    mixed = json.dumps({"a": [{"b": [[1]]}]}).encode()  # 5 levels
    assert not nests_deeper_than(mixed, 5) and nests_deeper_than(mixed, 4)


def test_siblings_do_not_add_up() -> None:
    wide = b"[" + b",".join([nested(3)] * 1000) + b"]"  # 4 deep, 4000 brackets
    assert not nests_deeper_than(wide, 4)
    assert nests_deeper_than(wide, 3)


def test_brackets_in_strings_are_text() -> None:
    body = json.dumps({"comment": "[{" * 500, "quote": '\\"[[[', "slash": "\\"}).encode()
    assert not nests_deeper_than(body, 1)


def test_a_string_left_open_hides_the_rest() -> None:
    # Invalid JSON (the parser refuses it next); the scan ends in linear time either way.
    body = b"[" * 3 + b'"' + b'\\"' * 50_000 + b"[" * 100
    assert not nests_deeper_than(body, 3)
    assert not nests_deeper_than(b'["abc\\', 1)  # a lone backslash at the very end
