"""Who sent a batch of feedback, as its API key says: the facts an event's body cannot change.

The tenant and the key come from the `Authorization` header, and `trusted` from the key's role
(`reviewer`). Everything in the body is a claim by the key's holder (README "Trust model")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sender:
    tenant: str
    key_prefix: str | None = None
    """The key's display prefix (`ctk_AbCd1234`), stored with every event it sent; None for
    events stored by ct-llm itself (imports, tests)."""
    trusted: bool = False
    """A reviewer key: its events are exempt from the per-user cap and the quarantine, and its
    `user_id` names the reviewer rather than the end user the answer was served to."""


def as_sender(who: Sender | str) -> Sender:
    """A bare tenant name is an untrusted sender without a key (library callers, tests)."""
    return who if isinstance(who, Sender) else Sender(who)
