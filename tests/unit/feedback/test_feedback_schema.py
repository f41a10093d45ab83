from __future__ import annotations

from typing import Any

import pytest

from ct_llm.feedback.schema import canonical_json, parse_event, payload_hash

EXCHANGE = {"messages": [{"role": "user", "content": "hi"}], "response": "hello"}


def ev(**kw: Any) -> dict[str, Any]:
    return {"event_id": "e1", "kind": "thumbs", "value": True, "response_id": "r1", **kw}


@pytest.mark.parametrize(
    "kind,value",
    [
        ("thumbs", True),
        ("thumbs", False),
        ("rating", 1),
        ("rating", 5),
        ("edit", "Better."),
        ("regenerate", None),
        ("regenerate", "r0"),
        ("comment", "too long"),
    ],
)
def test_valid_values_per_kind(kind: str, value: Any) -> None:
    e = parse_event(ev(kind=kind, value=value))
    assert e.kind == kind and e.value == value


@pytest.mark.parametrize(
    "kind,value,reason",
    [
        ("thumbs", 1, "true or false"),
        ("thumbs", "yes", "true or false"),
        ("rating", 0, "1 to 5"),
        ("rating", 6, "1 to 5"),
        ("rating", True, "1 to 5"),
        ("rating", 4.5, "1 to 5"),
        ("edit", "", "non-empty"),
        ("edit", "   ", "non-empty"),
        ("edit", None, "non-empty"),
        ("regenerate", 3, "string"),
        ("comment", None, "non-empty"),
    ],
)
def test_invalid_values_are_rejected_with_reason(kind: str, value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_event(ev(kind=kind, value=value))


def test_unknown_kind_and_missing_event_id() -> None:
    with pytest.raises(ValueError, match="kind"):
        parse_event(ev(kind="like"))
    with pytest.raises(ValueError, match="event_id"):
        parse_event({"kind": "thumbs", "value": True, "response_id": "r1"})
    with pytest.raises(ValueError, match="event_id"):
        parse_event(ev(event_id=""))
    with pytest.raises(ValueError, match="event_id"):
        parse_event(ev(event_id="x" * 257))


def test_target_is_response_id_xor_full_exchange() -> None:
    assert parse_event({"event_id": "e", "kind": "thumbs", "value": False, **EXCHANGE}).response
    with pytest.raises(ValueError, match="response_id, or both"):
        parse_event({"event_id": "e", "kind": "thumbs", "value": False})
    with pytest.raises(ValueError, match="response_id, or both"):
        parse_event({"event_id": "e", "kind": "thumbs", "value": False, "response": "x"})
    with pytest.raises(ValueError, match="not both"):
        parse_event(ev(**EXCHANGE))


def test_unknown_fields_and_non_objects_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown field 'respnse_id'"):
        parse_event(ev(respnse_id="r"))
    with pytest.raises(ValueError, match="JSON object"):
        parse_event(["not", "an", "object"])
    with pytest.raises(ValueError, match="role"):
        parse_event(
            {
                "event_id": "e",
                "kind": "thumbs",
                "value": True,
                "messages": [{"role": "wizard", "content": "x"}],
                "response": "y",
            }
        )


def test_limits() -> None:
    with pytest.raises(ValueError, match="metadata"):
        parse_event(ev(metadata={"blob": "x" * 20_000}))
    with pytest.raises(ValueError, match="response"):
        parse_event(
            {
                "event_id": "e",
                "kind": "thumbs",
                "value": True,
                "messages": [{"role": "user", "content": "q"}],
                "response": "x" * 100_001,
            }
        )


def test_payload_hash_ignores_key_order_nulls_and_timezone_spelling() -> None:
    a = parse_event(ev(created_at="2025-01-01T12:00:00Z", metadata={"a": 1, "b": 2}))
    b = parse_event(
        {
            "metadata": {"b": 2, "a": 1},
            "response_id": "r1",
            "value": True,
            "kind": "thumbs",
            "event_id": "e1",
            "user_id": None,
            "created_at": "2025-01-01T13:00:00+01:00",
        }
    )
    assert payload_hash(a) == payload_hash(b)
    assert len(payload_hash(a)) == 64
    assert '"user_id"' not in canonical_json(b)


def test_payload_hash_changes_with_content() -> None:
    base = payload_hash(parse_event(ev()))
    assert payload_hash(parse_event(ev(value=False))) != base
    assert payload_hash(parse_event(ev(response_id="r2"))) != base
    assert payload_hash(parse_event(ev(user_id="u"))) != base
