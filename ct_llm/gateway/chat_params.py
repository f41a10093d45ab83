"""What of a chat request reaches the model server: an allowlist of fields, the tenant's caps,
and the operator's system prompt. Pure (no HTTP, no database); a request it cannot forward as
asked is an ApiError (400) that names the field, before anything is sent upstream.

Every field of the body is a claim by the key's holder. vLLM accepts far more than OpenAI's
chat API (`ignore_eos`, `prompt_logprobs`, `priority`, `chat_template`, ...), several of which
cost the server a lot or act on other tenants, so the gateway forwards OpenAI's sampling and
output fields, refuses anything else by name (as OpenAI does an unknown argument), and lets
vLLM's own sampling fields through only when `api.chat.extra_params` lists them.
"""

from __future__ import annotations

from typing import Any

from ct_llm.config import ChatLimits
from ct_llm.gateway.auth import ApiError
from ct_llm.gateway.chat_messages import SYSTEM_ROLES

FORWARDED = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
    }
)
"""OpenAI chat fields forwarded as sent (within the caps below)."""

REPLACED = frozenset({"model", "messages"})
"""Set by the gateway: the route picks the model, and the messages are checked and templated."""

IGNORED = frozenset({"store", "metadata", "service_tier"})
"""OpenAI platform fields (its own storage and tiers) that mean nothing here: dropped, so an
OpenAI client that sets them still works."""

TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def upstream_fields(body: dict[str, Any], limits: ChatLimits) -> dict[str, Any]:
    """The request's fields to send upstream, without `model` and `messages`: allowlisted,
    within `limits`, and with `max_tokens` set to the cap when the request names no limit."""
    allowed = FORWARDED | set(limits.extra_params)
    unknown = sorted(k for k in body if k not in allowed | REPLACED | IGNORED)
    if unknown:
        shown = ", ".join(f"'{k[:64]}'" for k in unknown[:5])
        raise ApiError(
            400,
            f"unsupported parameter(s): {shown}; the gateway forwards OpenAI's chat fields, "
            "and vLLM's own sampling fields only when api.chat.extra_params lists them",
            code="unsupported_parameter",
        )
    out = {k: v for k, v in body.items() if k in allowed}
    for name in TOKEN_FIELDS:
        if name in out and out[name] is not None:
            asked = _positive_int(out[name], name)
            if asked > limits.max_tokens:
                raise ApiError(
                    400,
                    f"{name} is {asked}; this tenant may ask for at most {limits.max_tokens} "
                    "tokens an answer (api.chat.max_tokens)",
                    code="max_tokens_too_large",
                )
    if all(out.get(name) is None for name in TOKEN_FIELDS):
        # Without a limit vLLM generates up to the context length: bound every answer.
        out["max_tokens"] = limits.max_tokens
    if "stream" in out and not isinstance(out["stream"], bool):
        # "false" is truthy here but false to vLLM: the gateway would stream a JSON answer.
        raise ApiError(400, "stream must be true or false", code="invalid_request")
    if out.get("n") is not None:
        n = _positive_int(out["n"], "n")
        if n > limits.max_n:
            raise ApiError(
                400,
                f"n is {n}; this tenant may ask for at most {limits.max_n} answer(s) a request "
                "(api.chat.max_n)",
                code="n_too_large",
            )
    return out


def _positive_int(value: Any, name: str) -> int:
    # bool is an int in Python; JSON's true is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, f"{name} must be a whole number >= 1", code="invalid_request")
    return value


def with_system_prompt(
    messages: list[dict[str, Any]], prompt: str | None, policy: str
) -> list[dict[str, Any]]:
    """The messages the model sees under the operator's system prompt and the tenant's
    `client_system_prompt` policy (see config.ChatLimits)."""
    leading = bool(messages) and messages[0].get("role") in SYSTEM_ROLES
    has_system = any(m.get("role") in SYSTEM_ROLES for m in messages)
    if has_system and policy == "refuse":
        raise ApiError(
            400,
            "system messages are set by the operator here (api.chat.client_system_prompt: "
            "refuse); send the conversation without one",
            code="system_prompt_not_allowed",
        )
    if not prompt or (has_system and policy == "replace"):
        return list(messages)
    if leading and isinstance(messages[0].get("content"), str):
        # One leading system message: templates of several families take only the first.
        merged = f"{prompt}\n\n{messages[0]['content']}"
        return [{**messages[0], "role": "system", "content": merged}, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]
