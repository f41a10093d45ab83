"""When a replica is restarted for memory growth (deploy/restart.py), and how: cordoned, drained,
restarted, reloaded, back in rotation - also when the restart fails."""

from __future__ import annotations

from typing import Any

import pytest

from ct_llm.deploy.restart import Managed, needs_restart, restart_replica


@pytest.mark.parametrize(
    ("baseline", "now", "limit", "others", "expected"),
    [
        (1000.0, 1500.0, 400.0, 1, True),
        (1000.0, 1300.0, 400.0, 1, False),  # within the limit
        (1000.0, 9000.0, 400.0, 0, False),  # the only replica: restarting would drop traffic
        (None, 9000.0, 400.0, 1, False),  # not measured warm yet
        (1000.0, 9000.0, None, 1, False),  # switched off
    ],
)
def test_needs_restart(
    baseline: float | None, now: float, limit: float | None, others: int, expected: bool
) -> None:
    assert needs_restart(baseline, now, limit, others) is expected


class FakeServer:
    url = "http://127.0.0.1:1"

    def __init__(self, calls: list[str], fail_start: bool = False) -> None:
        self.calls, self.fail_start, self.process = calls, fail_start, None

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self) -> Any:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError("no memory")
        return self


@pytest.mark.parametrize("fail", [False, True])
def test_restart_cordons_drains_and_always_uncordons(fail: bool) -> None:
    calls: list[str] = []
    in_flight = iter([2, 1, 0, 0, 0])
    managed = Managed(FakeServer(calls, fail_start=fail), baseline_mb=1000.0)  # type: ignore[arg-type]

    def run() -> float:
        return restart_replica(
            managed,
            cordon=lambda on: calls.append(f"cordon {on}"),
            in_flight=lambda: next(in_flight),
            reload=lambda url: calls.append(f"reload {url}"),
            drain_timeout_s=10.0,
        )

    if fail:
        with pytest.raises(RuntimeError):
            run()
        assert calls == ["cordon True", "stop", "start", "cordon False"]
    else:
        assert run() >= 0.2  # waited for the two in-flight requests
        assert calls == [
            "cordon True",
            "stop",
            "start",
            "reload http://127.0.0.1:1",
            "cordon False",
        ]
        assert managed.baseline_mb is None  # measured again once warm
