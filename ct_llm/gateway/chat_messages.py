"""A chat request's messages as the gateway forwards and logs them: every content plain text.
Pure (no HTTP client, no database); a request it cannot take is an ApiError (400).

OpenAI clients may send a message's content as a list of parts
(`[{"type": "text", "text": "..."}]`). The model behind the gateway is text-only, and the log
feeds curation, which works on text: text parts are joined here, once, so the model server and
the log see the same string, and any other part (image_url, input_audio, file, ...) is refused
by name rather than dropped silently or left for curation to trip over.
"""

from __future__ import annotations

from typing import Any

from ct_llm.gateway.auth import ApiError

ROLES = ("system", "developer", "user", "assistant", "tool")
"""OpenAI's chat roles. `developer` is OpenAI's newer name for `system` (the operator's system
prompt policy treats it as one); any other role would reach a chat template unchecked."""
SYSTEM_ROLES = ("system", "developer")

TEXT_PART_SEPARATOR = "\n"
"""What vLLM puts between text parts before templating, so joining them here changes nothing
the model sees."""


def plain_text_messages(messages: Any) -> list[dict[str, Any]]:
    """The request's `messages` with each content a string; 400 for anything else."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", code="invalid_messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(
                400, f"messages[{i}] must be an object with a 'role'", code="invalid_messages"
            )
        if m["role"] not in ROLES:
            raise ApiError(
                400,
                f"messages[{i}].role '{m['role'][:32]}' is not one of {', '.join(ROLES)}",
                code="invalid_messages",
            )
        content = m.get("content")
        if isinstance(content, str):
            out.append(m)
        elif content is None and m["role"] == "assistant":
            out.append(m)  # a turn that only calls tools has no content
        else:
            out.append({**m, "content": _joined_text(content, f"messages[{i}].content")})
    return out


def _joined_text(content: Any, where: str) -> str:
    if not isinstance(content, list) or not content:
        got = "an empty list" if content == [] else _json_type(content)
        raise ApiError(
            400,
            f"{where} must be a string or a non-empty list of text parts, not {got}",
            code="invalid_messages",
        )
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise ApiError(
                400, f"{where}[{j}] must be an object with a 'type'", code="invalid_messages"
            )
        if kind != "text":
            raise ApiError(
                400,
                f"{where}[{j}] is a '{kind[:64]}' part; only 'text' parts are accepted "
                "(the model is text-only)",
                code="unsupported_content",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise ApiError(400, f"{where}[{j}].text must be a string", code="invalid_messages")
        texts.append(text)
    return TEXT_PART_SEPARATOR.join(texts)


def _json_type(value: Any) -> str:
    names = {dict: "an object", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
