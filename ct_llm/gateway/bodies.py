"""Request bodies as the routes take them: read within the size limit, parsed as strict JSON
(no NaN/Infinity, bounded nesting), and a feedback body split into its events. A body it
cannot take is an ApiError (400/413), before anything else is done with it."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from ct_llm.gateway.auth import ApiError
from ct_llm.gateway.json_guard import MAX_JSON_DEPTH, nests_deeper_than


async def read_json_body(request: Request, limit: int) -> Any:
    """The request body as JSON: 413 over `limit` bytes, 400 if it is not JSON or nests too
    deep (json_guard.py).

    Content-Length is checked first so an honest oversized upload is refused unread; the bytes
    are counted too, because chunked bodies carry no length and a client may lie about it.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="bad_request") from None
        if too_big:
            raise ApiError(
                413,
                f"body is {declared} bytes; the limit is {limit} "
                "(api.max_body_bytes); split the request",
                code="body_too_large",
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                f"body is over the limit of {limit} bytes (api.max_body_bytes); split the request",
                code="body_too_large",
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise ApiError(
            400,
            f"body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep; "
            "send a flatter body",
            code="json_too_deep",
        )
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"body is not valid JSON ({e})", code="invalid_json") from None


def _no_constants(name: str) -> Any:
    # Python's parser takes NaN / Infinity, which JSON (RFC 8259) has not, and PostgreSQL's json
    # type refuses them at insert time: refuse them at the door instead.
    raise ValueError(f"{name} is not a JSON value")


def feedback_items(data: Any, max_events: int) -> list[Any]:
    """`{"events": [...]}` or one event object -> the list of raw events."""
    if isinstance(data, dict) and "events" in data:
        if set(data) != {"events"} or not isinstance(data["events"], list):
            raise ApiError(
                400, "'events' must be a list and the only key of a batch body", code="invalid_body"
            )
        items: list[Any] = data["events"]
    elif isinstance(data, dict):
        items = [data]
    else:
        raise ApiError(
            400,
            'body must be {"events": [event, ...]} or a single event object',
            code="invalid_body",
        )
    if len(items) > max_events:
        raise ApiError(
            413,
            f"{len(items)} events in one request; the limit is {max_events} "
            "(api.max_events_per_batch); split the batch",
            code="too_many_events",
        )
    return items
