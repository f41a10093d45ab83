"""Per-tenant rate and concurrency quotas of one gateway process: a token bucket per tenant and
kind of request, and a count of the tenant's chats in flight. Over a quota the request is
answered 429 with `Retry-After` before any work is done, so one tenant's flood cannot take
the model server's capacity from the others.

The state lives in this process: with several gateway processes each enforces its own share
(divide the settings by their number). All methods run on the event loop thread, so no locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ct_llm.config import QuotaConfig
from ct_llm.gateway.auth import ApiError


@dataclass
class TokenBucket:
    """`rate` tokens a second, holding at most `capacity`; starts full."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token; 0.0 if there was one, else the seconds until there will be."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class TenantQuotas:
    """The quotas of every tenant, from `api.quotas` (a tenant's own entry overrides the
    defaults); buckets are made on a tenant's first request."""

    def __init__(self, config: QuotaConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.clock = config, clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._in_flight: dict[str, int] = {}

    def admit(self, tenant: str, kind: str) -> None:
        """Count one request of `kind` ("chat" or "feedback"); 429 when over the rate."""
        limits = self.config.for_tenant(tenant)
        rate = limits.chat_per_s if kind == "chat" else limits.feedback_per_s
        if rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get((tenant, kind))
        if bucket is None or bucket.rate != rate:
            capacity = max(1.0, rate * limits.burst_s)
            bucket = TokenBucket(rate, capacity, capacity, now)
            self._buckets[(tenant, kind)] = bucket
        wait = bucket.take(now)
        if wait > 0:
            raise _too_many(
                f"{kind} requests of this tenant are over {rate:g}/s "
                f"(api.quotas.{kind}_per_s); retry after the delay",
                wait,
            )

    def chat_slot(self, tenant: str) -> Callable[[], None]:
        """Hold one of the tenant's concurrent chat slots; 429 when none is free. Returns the
        release (safe to call more than once): a streamed answer holds its slot until the
        stream ends, after the handler has returned."""
        cap = self.config.for_tenant(tenant).max_concurrent_chats
        held = self._in_flight.get(tenant, 0)
        if cap > 0 and held >= cap:
            raise _too_many(
                f"this tenant has {held} chat requests in flight, the most it may "
                "(api.quotas.max_concurrent_chats); retry when one has finished",
                1.0,
            )
        self._in_flight[tenant] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._in_flight[tenant] - 1
            if left:
                self._in_flight[tenant] = left
            else:
                del self._in_flight[tenant]

        return release

    def in_flight(self, tenant: str) -> int:
        return self._in_flight.get(tenant, 0)


def _too_many(message: str, wait_s: float) -> ApiError:
    return ApiError(
        429,
        message,
        type_="rate_limit_error",
        code="rate_limited",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )
