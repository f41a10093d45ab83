"""The feedback event schema (pydantic v2) and its idempotency hash. Pure: no database, no HTTP.

An event names the answer it is about either by `response_id` (an answer served by the gateway)
or by carrying the whole exchange (`messages` + `response`), e.g. for answers served elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

KINDS = ("thumbs", "rating", "edit", "regenerate", "comment")
Kind = Literal["thumbs", "rating", "edit", "regenerate", "comment"]


@dataclass(frozen=True)
class TextLimits:
    """Size limits of one event (the API's `api.max_*` settings). Identifier lengths are not
    here: they are fixed by the database columns."""

    max_text_chars: int = 100_000
    """Longest answer, edit or message content; generous for chat, small enough to bound a row."""
    max_comment_chars: int = 10_000
    max_messages: int = 256
    max_metadata_bytes: int = 16_384
    """Metadata is free-form, so it is bounded by its serialized size rather than its shape."""


DEFAULT_LIMITS = TextLimits()


def check_text(value: str) -> str:
    """Text that every store can hold: no NUL (PostgreSQL text refuses it) and no lone surrogate
    (valid as a JSON escape, but not encodable as UTF-8)."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL (U+0000) characters")
    if value.isascii():
        return value  # the common case, without encoding a copy
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (a lone surrogate escape?)") from None
    return value


def _check_json_text(value: Any) -> None:
    """check_text on every string inside a JSON value, keys included."""
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(str(k))
            _check_json_text(v)
    elif isinstance(value, list):
        for v in value:
            _check_json_text(v)


def find_non_finite(value: Any) -> str | None:
    """The dotted path of a number in `value` that is not finite ("" for `value` itself), or
    None when every number is finite.

    JSON has no Infinity or NaN, but a number too large for a double (`1e999`) parses as
    Infinity: SQLite would store it, PostgreSQL's json type refuses it, and no client meant it.
    Iterative, so it holds however deep the value nests."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item))
    return None


Text = Annotated[str, AfterValidator(check_text)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Literal["system", "user", "assistant", "tool"]
    content: Text
    name: Text | None = Field(None, max_length=256)


class FeedbackEventIn(BaseModel):
    """One feedback event as a client sends it."""

    # Unknown keys are errors, so a misspelt `respnse_id` is reported instead of silently dropped;
    # anything extra belongs in `metadata`.
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Text = Field(min_length=1, max_length=256)
    """Client-made idempotency key: a retried event must reuse it."""
    kind: Kind
    value: Any = None
    """thumbs: bool; rating: int 1-5; edit: the corrected answer; regenerate: the kept
    response_id or null; comment: text."""
    response_id: Text | None = Field(None, min_length=1, max_length=128)
    messages: list[Message] | None = Field(None, min_length=1)
    response: Text | None = None
    conversation_id: Text | None = Field(None, min_length=1, max_length=256)
    user_id: Text | None = Field(None, min_length=1, max_length=256)
    model_version: Text | None = Field(None, min_length=1, max_length=256)
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        # Naive timestamps are taken as UTC, and every instant is expressed in UTC, so one
        # event always hashes the same way whatever offset the client wrote it with.
        if v is None:
            return v
        if v.tzinfo is None:
            return v.replace(tzinfo=timezone.utc)
        try:
            return v.astimezone(timezone.utc)
        except OverflowError:
            # 0001-01-01T00:00+14:00 is in year 0 in UTC, 9999-12-31T23:59-14:00 in year 10000:
            # neither exists for Python's datetime (and pydantic lets OverflowError through).
            raise ValueError("is outside years 1-9999 once converted to UTC") from None

    @field_validator("metadata")
    @classmethod
    def _metadata_text(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            _check_json_text(v)
        return v

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> FeedbackEventIn:
        limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        _check_value(self.kind, self.value, limits)
        _check_sizes(self, limits)
        has_exchange = self.messages is not None or self.response is not None
        if self.response_id is not None and has_exchange:
            raise ValueError("give either response_id or messages + response, not both")
        if self.response_id is None and (self.messages is None or self.response is None):
            raise ValueError("an event needs response_id, or both messages and response")
        return self


def _check_sizes(ev: FeedbackEventIn, limits: TextLimits) -> None:
    if ev.messages is not None:
        if len(ev.messages) > limits.max_messages:
            raise ValueError(f"{len(ev.messages)} messages; at most {limits.max_messages}")
        for i, m in enumerate(ev.messages):
            if len(m.content) > limits.max_text_chars:
                raise ValueError(
                    f"messages.{i}.content is longer than {limits.max_text_chars} characters"
                )
    if ev.response is not None and len(ev.response) > limits.max_text_chars:
        raise ValueError(f"response is longer than {limits.max_text_chars} characters")
    if ev.metadata is not None:
        try:
            size = len(json.dumps(ev.metadata, ensure_ascii=False, default=str).encode("utf-8"))
        except (TypeError, ValueError) as e:
            raise ValueError(f"metadata is not serializable: {e}") from None
        if size > limits.max_metadata_bytes:
            raise ValueError(f"metadata is {size} bytes; at most {limits.max_metadata_bytes}")


def _check_value(kind: str, value: Any, limits: TextLimits) -> None:
    _check_json_text(value)
    # bool is a subclass of int in Python: a rating of `true` must not pass as 1.
    if kind == "thumbs":
        if not isinstance(value, bool):
            raise ValueError("thumbs value must be true or false")
    elif kind == "rating":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ValueError("rating value must be an integer from 1 to 5")
    elif kind == "edit":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("edit value must be the corrected answer (a non-empty string)")
        if len(value) > limits.max_text_chars:
            raise ValueError(f"edit value is longer than {limits.max_text_chars} characters")
    elif kind == "regenerate":
        if value is not None and not isinstance(value, str):
            raise ValueError("regenerate value must be a string (the response_id kept) or null")
        if isinstance(value, str) and len(value) > 256:
            raise ValueError("regenerate value is longer than 256 characters")
    elif kind == "comment":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("comment value must be a non-empty string")
        if len(value) > limits.max_comment_chars:
            raise ValueError(f"comment value is longer than {limits.max_comment_chars} characters")


def parse_event(item: Any, limits: TextLimits = DEFAULT_LIMITS) -> FeedbackEventIn:
    """Validate one raw item; raises ValueError with a one-line reason."""
    if not isinstance(item, dict):
        raise ValueError(f"an event must be a JSON object, got {type(item).__name__}")
    where = find_non_finite(item)
    if where is not None:
        raise ValueError(
            f"{where}: numbers must be finite (a number as large as 1e999 overflows to Infinity)"
        )
    try:
        return FeedbackEventIn.model_validate(item, context={"limits": limits})
    except ValidationError as e:
        raise ValueError(describe_validation_error(e)) from None


def describe_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field '{loc}' (put extra data in metadata)")
        elif loc:
            parts.append(f"{loc}: {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts)


def canonical_json(event: FeedbackEventIn) -> str:
    # Omitted and explicit-null fields mean the same thing, so both hash alike.
    data = event.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_hash(event: FeedbackEventIn) -> str:
    """sha256 of the validated event's canonical JSON: a retry of the same event hashes the same,
    whatever the key order or whitespace of the client's JSON."""
    return hashlib.sha256(canonical_json(event).encode("utf-8")).hexdigest()
