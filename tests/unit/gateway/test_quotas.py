"""Per-tenant quotas (gateway/quotas.py) on a fake clock; at the HTTP level:
tests/security/test_chat_limits.py."""

from __future__ import annotations

import pytest

from ct_llm.config import QuotaConfig
from ct_llm.gateway.auth import ApiError
from ct_llm.gateway.quotas import TenantQuotas


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    quotas = TenantQuotas(QuotaConfig(chat_per_s=2, burst_s=2), clock)
    for _ in range(4):  # 2/s x 2 s of burst
        quotas.admit("acme", "chat")
    with pytest.raises(ApiError) as e:
        quotas.admit("acme", "chat")
    assert e.value.status == 429 and e.value.headers == {"Retry-After": "1"}
    quotas.admit("other", "chat")  # another tenant's bucket is its own
    quotas.admit("acme", "feedback")  # and so is another kind of request
    clock.now += 0.5  # one token back
    quotas.admit("acme", "chat")
    with pytest.raises(ApiError):
        quotas.admit("acme", "chat")


def test_retry_after_says_when_a_token_is_back() -> None:
    clock = Clock()
    quotas = TenantQuotas(QuotaConfig(chat_per_s=0.1, burst_s=10), clock)
    quotas.admit("acme", "chat")
    with pytest.raises(ApiError) as e:
        quotas.admit("acme", "chat")
    assert e.value.headers == {"Retry-After": "10"}


def test_zero_turns_a_limit_off_and_tenants_override() -> None:
    cfg = QuotaConfig.model_validate({"chat_per_s": 1, "tenants": {"big": {"chat_per_s": 0}}})
    quotas = TenantQuotas(cfg, Clock())
    for _ in range(1000):
        quotas.admit("big", "chat")
    quotas.admit("small", "chat")
    quotas.admit("small", "chat")  # burst 2 s x 1/s
    with pytest.raises(ApiError):
        quotas.admit("small", "chat")


def test_concurrent_chats_are_capped_and_released_once() -> None:
    quotas = TenantQuotas(QuotaConfig(max_concurrent_chats=2), Clock())
    first, second = quotas.chat_slot("acme"), quotas.chat_slot("acme")
    with pytest.raises(ApiError) as e:
        quotas.chat_slot("acme")
    assert e.value.status == 429 and e.value.code == "rate_limited"
    quotas.chat_slot("other")()
    first()
    first()  # a second release gives nothing back
    assert quotas.in_flight("acme") == 1
    quotas.chat_slot("acme")
    second()
    assert quotas.in_flight("acme") == 1
