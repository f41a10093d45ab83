"""Which replica takes the next request (gateway/upstreams.py)."""

from __future__ import annotations

import time

import pytest

from ct_llm.gateway.upstreams import Upstreams


def test_fewest_in_flight_first_and_ties_rotate() -> None:
    ups = Upstreams(["http://a/", "http://b", "http://c"])
    assert [r.url for r in ups.replicas] == ["http://a", "http://b", "http://c"]
    firsts = [ups.order()[0].url for _ in range(6)]
    assert sorted(firsts) == [
        "http://a",
        "http://a",
        "http://b",
        "http://b",
        "http://c",
        "http://c",
    ]
    a, b, c = ups.replicas
    ups.acquire(a)
    ups.acquire(a)
    ups.acquire(b)
    assert [r.url for r in ups.order()] == ["http://c", "http://b", "http://a"]
    ups.release(a)
    ups.release(a)
    assert a.in_flight == 0 and a.served == 2


def test_a_replica_that_refused_is_passed_over_for_a_while() -> None:
    ups = Upstreams(["http://a", "http://b"])
    a, b = ups.replicas
    ups.mark_down(a)
    for _ in range(4):
        assert ups.order()[0] is b  # even when a is idle and b is busy
        ups.acquire(b)
    assert ups.order()[-1] is a  # still tried last: a refused connection is retried elsewhere
    assert ups.order(now=time.monotonic() + 10)[0] is a  # back once the pause is over


def test_no_upstream_is_an_error() -> None:
    with pytest.raises(ValueError):
        Upstreams([])
