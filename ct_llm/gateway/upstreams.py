"""The vLLM replicas behind the gateway: which one takes the next request.

Least in-flight requests first (ties: round robin), skipping a replica that refused a connection
in the last few seconds (restarting, or gone). A request whose connection was refused never
reached the replica, so the gateway may safely send it to the next one: a replica restarted
one at a time costs no request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

DOWN_FOR_S = 2.0
"""How long a replica that refused a connection is passed over."""


@dataclass
class Upstream:
    url: str
    in_flight: int = 0
    down_until: float = 0.0
    served: int = 0
    cordoned: bool = False
    """Taken out of rotation (a rolling restart): tried only when every other replica fails."""


@dataclass
class Upstreams:
    urls: list[str]
    replicas: list[Upstream] = field(init=False)
    _turn: Iterator[int] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("the gateway needs at least one upstream URL")
        self.replicas = [Upstream(u.rstrip("/")) for u in self.urls]
        self._turn = itertools.count()

    @property
    def first(self) -> str:
        return self.replicas[0].url

    def order(self, now: float | None = None) -> list[Upstream]:
        """Every replica, best first: in rotation before cordoned, up before down, then fewest
        in flight, then rotation."""
        now = time.monotonic() if now is None else now
        start = next(self._turn) % len(self.replicas)
        rotated = self.replicas[start:] + self.replicas[:start]
        return sorted(rotated, key=lambda r: (r.cordoned, r.down_until > now, r.in_flight))

    def get(self, url: str) -> Upstream:
        return next(r for r in self.replicas if r.url == url.rstrip("/"))

    def mark_down(self, replica: Upstream) -> None:
        replica.down_until = time.monotonic() + DOWN_FOR_S

    @staticmethod
    def acquire(replica: Upstream) -> None:
        replica.in_flight += 1
        replica.served += 1

    @staticmethod
    def release(replica: Upstream) -> None:
        replica.in_flight -= 1
