"""Whether curation can use a stored feedback row, and if not, why. Pure.

The store holds whatever was accepted when it was written: chats the gateway logged before it
joined OpenAI content parts into text (issue 17), rows from older versions, other tools or a
hand-run script. Curation must never crash on one of them, so every row read from the store is
checked here before the pairing rules see it; a row that fails is dropped and counted under its
reason in the manifest's `drops`:

- `unreadable_json`:        the messages or the value are not JSON text;
- `messages_not_a_list`:    the conversation is an object, a string, a number ...;
- `message_not_an_object`:  one of its messages is not an object;
- `message_without_role`:   a message without a role, or with one that is not a string;
- `content_not_text`:       a message whose content is not a string (a list of content parts,
                            an object, null, a number);
- `answer_not_text`:        the answer (the event's own or the logged response) is not a string;
- `invalid_value`:          a value its kind cannot have (thumbs not true/false, rating not an
                            integer 1-5, edit not a string, regenerate not a string or null);
- `unknown_kind`:           an event kind the rules do not know.

An unknown role string or an empty text is not malformed: validate.py judges those, on the
training rows the rules make.
"""

from __future__ import annotations

from typing import Any

from ct_llm.feedback.schema import KINDS


def messages_problem(messages: Any) -> str | None:
    """Why a decoded, non-empty conversation cannot be used, or None."""
    if not isinstance(messages, list):
        return "messages_not_a_list"
    for m in messages:
        if not isinstance(m, dict):
            return "message_not_an_object"
        if not isinstance(m.get("role"), str):
            return "message_without_role"
        if not isinstance(m.get("content"), str):
            return "content_not_text"
    return None


def answer_problem(answer: Any) -> str | None:
    return None if isinstance(answer, str) else "answer_not_text"


def value_problem(kind: str, value: Any) -> str | None:
    """Why an event's value cannot be what its kind says, or None. Empty edits are left to the
    rules, which count them as `edit_empty`."""
    if kind not in KINDS:
        return "unknown_kind"
    # bool is an int in Python: a rating of `true` is not a 1.
    if kind == "thumbs":
        ok = isinstance(value, bool)
    elif kind == "rating":
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
    elif kind == "edit":
        ok = isinstance(value, str)
    elif kind == "regenerate":
        ok = value is None or isinstance(value, str)
    else:  # comment: read by no rule
        ok = True
    return None if ok else "invalid_value"
