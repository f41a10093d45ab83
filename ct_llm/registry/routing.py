"""Which model version answers a conversation: pure functions, no database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    served_model: str
    """Name the vLLM server knows: the base model's served name or an adapter version id."""
    model_version: str
    """Version recorded with the response (the adapter version, or the base model name)."""
    variant: str
    """`production`, `canary` or `base`."""


def canary_bucket(key: str) -> float:
    """A stable number in [0, 1) for a conversation: the same conversation always lands in the
    same bucket, so one user's conversation never flips between models mid-way."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_route(
    conversation_key: str,
    base_model: str,
    production: str | None,
    canary: str | None,
    canary_weight: float,
) -> Route:
    if canary and canary_weight > 0 and canary_bucket(conversation_key) < canary_weight:
        return Route(canary, canary, "canary")
    if production:
        return Route(production, production, "production")
    return Route(base_model, base_model, "base")
