"""Hot-swap ordering against fake vLLM replicas at the HTTP level: a load or probe failing
mid-swap moves no alias, a successful swap loads and probes before the alias moves and unloads
only after, and the swap lock keeps two swaps of one tenant from interleaving (with a test that
removes the lock and sees them interleave, so the lock test can fail).

Real rollout code, real VllmClient over real HTTP, real SQLite registry and sealed adapter
folders; each fake replica (tests/fake_vllm.py) records every call with the aliases committed
in the registry at that moment. Real vLLM: tests/integration/test_serving.py.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from adapter_files import seal_adapter
from fake_vllm import Aliases, FakeVllm

from ct_llm.deploy import rollout
from ct_llm.deploy.drain import wait_drained
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.errors import ServingError
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

TENANT = "acme"
CLIENT_TIMEOUT_S = 5.0
"""The client's timeout in these tests (60 s in production), so a hung call fails fast."""
LOAD_S = 0.8
"""How long a load takes in the lock tests: far longer than two threads need to both reach it."""


def read_aliases(ws: Workspace) -> Aliases:
    with session_scope(ws.database_url) as s:
        return {
            name: (a.model_version if (a := registry.get_alias(s, TENANT, name)) else None)
            for name in (registry.PRODUCTION, registry.CANARY)
        }


@pytest.fixture
def ws(empty_workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setattr(
        "ct_llm.deploy.hotswap.VllmClient", functools.partial(VllmClient, timeout=CLIENT_TIMEOUT_S)
    )
    # The drain's first wait is for requests the gateway routed just before the alias moved;
    # there is no gateway here. The drain check itself (/metrics) still runs before each unload.
    monkeypatch.setattr(
        "ct_llm.deploy.hotswap.wait_drained", functools.partial(wait_drained, settle_s=0.0)
    )
    return empty_workspace


@pytest.fixture
def replicas(ws: Workspace) -> Iterator[list[FakeVllm]]:
    """Two replicas: a swap must reach both before any alias moves."""
    servers = [FakeVllm(ws.config.base_model, lambda: read_aliases(ws)).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.close()


def urls(servers: list[FakeVllm]) -> list[str]:
    return [s.url for s in servers]


def add_adapter(ws: Workspace, number: int) -> str:
    """An approved adapter with a sealed folder that passes every check before a load."""
    version = registry.adapter_version_id(TENANT, ws.config.adapter_name, number)
    folder = ws.adapters_dir / version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    (folder / "adapter_model.safetensors").write_bytes(b"fake weights %d" % number)
    seal_adapter(folder)
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, TENANT, version, number, str(folder), None, None, {})
        registry.set_state(s, TENANT, version, "approved")
    return version


def with_production(ws: Workspace, servers: list[FakeVllm], *numbers: int) -> list[str]:
    """Versions promoted one after the other, as the registry records it (the chain a rollback
    follows), each loaded on every replica as the promotes left them (none unloaded yet)."""
    versions = [add_adapter(ws, n) for n in numbers]
    previous = None
    with session_scope(ws.database_url) as s:
        for version in versions:
            registry.set_alias(s, TENANT, registry.PRODUCTION, version, 1.0)
            registry.set_state(s, TENANT, version, "production")
            if previous:
                registry.set_state(s, TENANT, previous, "retired")
            registry.record(
                s, TENANT, version, "promote", "production", "test", {"previous": previous}
            )
            previous = version
    for server in servers:
        server.adapters.update({v: str((ws.adapters_dir / v).resolve()) for v in versions})
    return versions


def state(ws: Workspace, version: str) -> str:
    with session_scope(ws.database_url) as s:
        return registry.get_version(s, TENANT, version).state


def last_event(ws: Workspace, version: str) -> tuple[str, str, dict[str, Any]]:
    with session_scope(ws.database_url) as s:
        e = registry.history(s, TENANT, version)[-1]
        return e.action, e.outcome, dict(e.details or {})


def assert_no_alias_lost_its_adapter(ws: Workspace, servers: list[FakeVllm]) -> None:
    """What users need holds everywhere: every version an alias names is loaded on every
    replica now, and no replica was ever asked to unload a version an alias named then."""
    for server in servers:
        for version in read_aliases(ws).values():
            assert version is None or version in server.adapters, (server.url, version)
        for call in server.calls:
            if call.kind == "unload":
                assert call.name not in call.aliases.values(), call


# -- 1. a failure mid-swap moves no alias ----------------------------------------------------


def deploy(ws: Workspace, version: str, servers: list[FakeVllm]) -> None:
    rollout.deploy_canary(ws, TENANT, version, weight=0.2, server_url=urls(servers))


def promote_result(ws: Workspace, version: str, servers: list[FakeVllm]) -> dict[str, Any]:
    return rollout.promote(ws, TENANT, version_id=version, server_url=urls(servers))


def promote(ws: Workspace, version: str, servers: list[FakeVllm]) -> None:
    promote_result(ws, version, servers)


SWAPS = {"deploy_canary": (deploy, "deploy"), "promote": (promote, "promote")}
FAILURES = {
    "load answers 500": ("load", "500", "injected failure of load"),
    "load times out": ("load", "hang", "did not answer POST /v1/load_lora_adapter within 0.3 s"),
    "probe answers 500": ("probe", "500", "injected failure of probe"),
}


@pytest.mark.parametrize("swap", SWAPS)
@pytest.mark.parametrize("failure", FAILURES)
def test_a_swap_failing_on_one_replica_moves_no_alias_and_can_be_retried(
    ws: Workspace,
    replicas: list[FakeVllm],
    monkeypatch: pytest.MonkeyPatch,
    swap: str,
    failure: str,
) -> None:
    (production,) = with_production(ws, replicas, 1)
    candidate = add_adapter(ws, 2)
    run, action = SWAPS[swap]
    kind, mode, says = FAILURES[failure]
    good, bad = replicas
    bad.fail[kind] = mode
    if mode == "hang":  # only the bad replica's client gives up early: the good one answers
        monkeypatch.setattr(
            "ct_llm.deploy.hotswap.VllmClient",
            lambda url: VllmClient(url, timeout=0.3 if url == bad.url else CLIENT_TIMEOUT_S),
        )

    with pytest.raises(ServingError, match=says) as info:
        run(ws, candidate, replicas)

    assert bad.url in str(info.value)  # which of the replicas failed
    assert read_aliases(ws) == {"production": production, "canary": None}
    assert state(ws, candidate) == "approved"
    assert last_event(ws, candidate) == (action, "failed", {"error": str(info.value)})
    # The healthy replica may hold the candidate (loaded, probed): harmless while no alias
    # names it. Nothing users get was touched.
    assert candidate in good.adapters
    assert all(c.kind != "unload" for s in replicas for c in s.calls)
    assert all(c.aliases["production"] == production for s in replicas for c in s.calls)
    assert_no_alias_lost_its_adapter(ws, replicas)

    # Once the replica is well again the same swap goes through, the half-done load included.
    bad.fail.clear()
    bad.released.set()
    monkeypatch.setattr(
        "ct_llm.deploy.hotswap.VllmClient", functools.partial(VllmClient, timeout=CLIENT_TIMEOUT_S)
    )
    run(ws, candidate, replicas)
    alias = "canary" if swap == "deploy_canary" else "production"
    assert read_aliases(ws)[alias] == candidate
    assert_no_alias_lost_its_adapter(ws, replicas)


def test_an_adapter_a_replica_does_not_list_after_loading_is_not_routed(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    """vLLM answered 200 to the load but does not serve the name (a restarted or confused
    replica): the listing after the load is what counts."""
    candidate = add_adapter(ws, 1)
    replicas[1].fail["load"] = "forget"
    with pytest.raises(ServingError, match="accepted adapter .* but does not list it") as info:
        deploy(ws, candidate, replicas)
    assert replicas[1].url in str(info.value)
    assert read_aliases(ws) == {"production": None, "canary": None}
    assert last_event(ws, candidate)[:2] == ("deploy", "failed")


# -- 2. the order of calls on a successful swap -------------------------------------------


def test_promote_loads_and_probes_everywhere_before_the_alias_moves_and_unloads_after(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    oldest, replaced = with_production(ws, replicas, 1, 2)
    new = add_adapter(ws, 3)
    result = promote_result(ws, new, replicas)

    assert read_aliases(ws) == {"production": new, "canary": None}
    # The version production replaced stays loaded (a rollback is an alias move); the one
    # before it is unloaded, once drained.
    assert result["unloaded"] == {oldest: "unloaded"}
    for server in replicas:
        steps = [(c.kind, c.name, c.aliases["production"]) for c in server.calls]
        swap = [s for s in steps if s[0] in ("load", "probe", "unload")]
        assert swap == [
            ("load", new, replaced),
            ("probe", new, replaced),
            ("unload", oldest, new),
        ], server.url
        # The listing that proves the load is done comes before the alias moves; the drain
        # check (metrics) comes after, before the unload.
        assert ("models", None, replaced) in steps
        metrics = steps.index(("metrics", None, new))
        assert metrics < steps.index(("unload", oldest, new))
        assert oldest not in server.adapters and {replaced, new} <= set(server.adapters)
    assert_no_alias_lost_its_adapter(ws, replicas)


def test_deploy_canary_routes_only_after_every_replica_loaded_and_answered(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    (production,) = with_production(ws, replicas, 1)
    canary = add_adapter(ws, 2)
    deploy(ws, canary, replicas)
    assert read_aliases(ws) == {"production": production, "canary": canary}
    for server in replicas:
        assert [(c.kind, c.name) for c in server.calls if c.kind in ("load", "probe")] == [
            ("load", canary),
            ("probe", canary),
        ]
        # Every call of the deploy happened while no canary was routed.
        assert all(c.aliases == {"production": production, "canary": None} for c in server.calls)
        assert server.names("unload") == []


def test_an_unload_failing_after_the_alias_moved_does_not_undo_the_swap(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    """Users already get the new version; the old one stays loaded where vLLM refused to
    unload it and is unloaded by the next swap (nothing routes to it meanwhile)."""
    oldest, _ = with_production(ws, replicas, 1, 2)
    new = add_adapter(ws, 3)
    replicas[1].fail["unload"] = "500"
    result = promote_result(ws, new, replicas)
    assert read_aliases(ws)["production"] == new
    assert "refused to unload" in result["unloaded"][oldest]
    assert oldest in replicas[1].adapters
    replicas[1].fail.clear()
    promote_result(ws, add_adapter(ws, 4), replicas)
    assert all(oldest not in s.adapters for s in replicas)


# -- 3. the swap lock ------------------------------------------------------------------------


def swap_concurrently(
    ws: Workspace, servers: list[FakeVllm], actions: list[Callable[[], Any]]
) -> list[BaseException | None]:
    """Start the actions at the same instant in threads, each load taking LOAD_S; returns each
    action's exception (None: it succeeded)."""
    for server in servers:
        server.load_s = LOAD_S
    start = threading.Barrier(len(actions))
    errors: list[BaseException | None] = [None] * len(actions)

    def run(i: int) -> None:
        start.wait()
        try:
            actions[i]()
        except Exception as e:
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_promotes_of_one_tenant_at_once_are_serialized(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    (production,) = with_production(ws, replicas, 1)
    a, b = add_adapter(ws, 2), add_adapter(ws, 3)
    errors = swap_concurrently(
        ws, replicas, [lambda: promote(ws, a, replicas), lambda: promote(ws, b, replicas)]
    )
    assert errors == [None, None]
    assert [s.max_loads_in_flight for s in replicas] == [1, 1]
    first, second = replicas[0].names("load")
    assert {first, second} == {a, b}
    for server in replicas:
        # Each swap ran whole: the second's load came after the first's alias move, and the
        # second promote replaced the first (not the version both found when they started).
        loads = [(c.name, c.aliases["production"]) for c in server.calls if c.kind == "load"]
        assert loads == [(first, production), (second, first)], server.url
    assert read_aliases(ws) == {"production": second, "canary": None}
    assert last_event(ws, second)[2]["previous"] == first
    assert state(ws, first) == "retired" and state(ws, production) == "retired"
    assert_no_alias_lost_its_adapter(ws, replicas)


def test_a_promote_and_a_rollback_at_once_run_one_after_the_other(
    ws: Workspace, replicas: list[FakeVllm]
) -> None:
    oldest, production = with_production(ws, replicas, 1, 2)
    new = add_adapter(ws, 3)
    errors = swap_concurrently(
        ws,
        replicas,
        [
            lambda: promote(ws, new, replicas),
            lambda: rollout.rollback(ws, TENANT, server_url=urls(replicas)),
        ],
    )
    assert errors == [None, None]
    assert [s.max_loads_in_flight for s in replicas] == [1, 1]
    # The rollback loads the version it restores (already loaded: a no-op): the first load
    # tells which ran first, and the second must have seen the first's alias move.
    loads = [(c.name, c.aliases["production"]) for c in replicas[0].calls if c.kind == "load"]
    if loads[0][0] == new:  # promote, then its rollback: back to the version it replaced
        assert loads == [(new, production), (production, new)]
        assert read_aliases(ws)["production"] == production and state(ws, new) == "rejected"
    else:  # rollback to the oldest, then the promote on top of it
        assert loads == [(oldest, production), (new, oldest)]
        assert read_aliases(ws)["production"] == new and state(ws, production) == "rejected"
    assert_no_alias_lost_its_adapter(ws, replicas)


def test_without_the_lock_loads_overlap(
    ws: Workspace, replicas: list[FakeVllm], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock tests above can fail: with the swap lock made a no-op, the same two promotes
    load at the same time on every replica, both from the same production. (What they end
    with then depends on timing: one may fail on the registry's re-check, or both pass.)"""
    monkeypatch.setattr(rollout, "job_lock", lambda *args, **kwargs: nullcontext())
    production = with_production(ws, replicas, 1)[0]
    a, b = add_adapter(ws, 2), add_adapter(ws, 3)
    swap_concurrently(
        ws, replicas, [lambda: promote(ws, a, replicas), lambda: promote(ws, b, replicas)]
    )
    assert [s.max_loads_in_flight for s in replicas] == [2, 2]
    assert [c.aliases["production"] for c in replicas[0].calls if c.kind == "load"] == [
        production,
        production,
    ]
