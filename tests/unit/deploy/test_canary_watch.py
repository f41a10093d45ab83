"""check_canary on a real SQLite workspace: which votes count, the recorded decision, and with
--apply the real rollout.promote / rollout.rollback against a fake vLLM that speaks the admin
HTTP API (models, load/unload LoRA, one-token completion probe). Real vLLM: tests/integration."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from adapter_files import seal_adapter
from typer.testing import CliRunner

from ct_llm.cli import app
from ct_llm.deploy.canary import ArmFeedback, CanaryPolicy
from ct_llm.deploy.canary_watch import canary_stats, check_canary
from ct_llm.errors import RegistryError
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, FeedbackEvent, utcnow
from ct_llm.workspace import Workspace

TENANT = "acme"
NOW = utcnow()
BEFORE, DEPLOYED, AFTER = (
    NOW - timedelta(hours=3),
    NOW - timedelta(hours=2),
    NOW - timedelta(hours=1),
)
DEAD_SERVER = "http://127.0.0.1:9"  # nothing listens: any vLLM call would fail


class FakeVllm(ThreadingHTTPServer):
    """Just enough of vLLM's OpenAI server for the hot-swap path; records what it was asked."""

    def __init__(self, base_model: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base_model = base_model
        self.adapters: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeVllm

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            models = [{"id": self.server.base_model}] + [
                {"id": name, "parent": self.server.base_model, "root": path}
                for name, path in self.server.adapters.items()
            ]
            self._send(200, {"data": models})
        else:
            self._send(200 if self.path == "/health" else 404, {})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/v1/completions":
            # The swap's one-token probe must name an adapter this server has loaded.
            known = body["model"] in self.server.adapters
            self._send(200 if known else 404, {"choices": [{"text": " there"}]})
            return
        name = body["lora_name"]
        self.server.calls.append((self.path.rsplit("/", 1)[1], name))
        if self.path == "/v1/load_lora_adapter":
            self.server.adapters[name] = body["lora_path"]
            self._send(200, {})
        elif self.path == "/v1/unload_lora_adapter":
            found = self.server.adapters.pop(name, None)
            self._send(200 if found else 404, {})
        else:
            self._send(404, {})


@pytest.fixture
def fake_vllm(empty_workspace: Workspace) -> Iterator[FakeVllm]:
    server = FakeVllm(empty_workspace.config.base_model)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def add_adapter(ws: Workspace, number: int, state: str, alias: str | None = None) -> str:
    """A registered adapter with a folder that passes the adapter checks (vLLM is fake)."""
    version = registry.adapter_version_id(TENANT, "assistant", number)
    folder = ws.adapters_dir / version
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    (folder / "adapter_model.safetensors").write_bytes(b"fake weights")
    seal_adapter(folder)
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, TENANT, version, number, str(folder), None, None, {})
        registry.set_state(s, TENANT, version, "approved")
        if state != "approved":
            registry.set_state(s, TENANT, version, state)
        if alias:
            registry.set_alias(s, TENANT, alias, version, 0.1 if alias == "canary" else 1.0)
            row = registry.get_alias(s, TENANT, alias)
            assert row is not None
            row.updated_at = DEPLOYED
    return version


def add_votes(
    ws: Workspace, version: str, down: int, up: int, at: datetime, tenant: str = TENANT
) -> None:
    """Each vote by its own end user on an answer the gateway logged for them."""
    with session_scope(ws.database_url) as s:
        for value in [False] * down + [True] * up:
            rid, user = uuid.uuid4().hex, f"u-{uuid.uuid4().hex[:8]}"
            s.add(logged_response(tenant, rid, version, user))
            s.add(
                FeedbackEvent(
                    tenant=tenant,
                    event_id=uuid.uuid4().hex,
                    payload_hash="-",
                    kind="thumbs",
                    value=value,
                    response_id=rid,
                    user_id=user,
                    model_version=version,
                    created_at=at,
                    received_at=at,
                )
            )


def logged_response(tenant: str, rid: str, version: str, user: str | None) -> ChatResponse:
    return ChatResponse(
        id=rid,
        tenant=tenant,
        conversation_id=rid,
        messages=[{"role": "user", "content": "hi"}],
        response="hello",
        model_version=version,
        latency_ms=1.0,
        user_id=user,
    )


def history(ws: Workspace, version: str) -> list[Any]:
    with session_scope(ws.database_url) as s:
        return [
            (e.action, e.outcome, e.actor, e.details) for e in registry.history(s, TENANT, version)
        ]


def worse_canary_on_base(ws: Workspace) -> str:
    """Canary 40% thumbs-down against the base model's 10%, since the deploy. Votes that must
    not count would reverse it: the base model's from before the deploy and another tenant's."""
    canary = add_adapter(ws, 1, "canary", alias="canary")
    base = ws.config.base_model
    add_votes(ws, canary, 40, 60, AFTER)
    add_votes(ws, base, 90, 810, AFTER)
    add_votes(ws, base, 900, 0, BEFORE)
    add_votes(ws, base, 900, 0, AFTER, tenant="globex")
    return canary


def test_a_worse_canary_is_reported_and_recorded_without_apply(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    canary = worse_canary_on_base(ws)
    res = check_canary(ws, TENANT, apply=False, server_url=DEAD_SERVER)
    assert res["action"] == "rollback" and res["applied"] is None
    assert res["canary"] == canary and res["production"] == ws.config.base_model
    t = res["metrics"]["thumbs_down_rate"]
    assert (t["n_canary"], t["n_production"]) == (100, 900)
    assert t["canary"] == pytest.approx(0.4) and t["production"] == pytest.approx(0.1)
    # DEPLOYED is 2 h before NOW, taken at import: add the time the suite ran since then.
    since_import_h = (utcnow() - NOW).total_seconds() / 3600
    assert 1.9 < res["metrics"]["elapsed_h"] < 2.1 + since_import_h
    action, outcome, actor, details = history(ws, canary)[-1]
    assert (action, outcome, actor) == ("canary_check", "rollback", "canary-watch")
    assert details["applied"] is False and details["production"] == ws.config.base_model
    assert details["metrics"]["thumbs_down_rate"]["verdict"] == "worse"
    assert details["policy"]["alpha"] == 0.05
    with session_scope(ws.database_url) as s:  # nothing moved
        alias = registry.get_alias(s, TENANT, "canary")
        assert alias is not None and alias.model_version == canary
        assert registry.get_version(s, TENANT, canary).state == "canary"


def test_apply_rolls_a_worse_canary_back(empty_workspace: Workspace, fake_vllm: FakeVllm) -> None:
    ws = empty_workspace
    canary = worse_canary_on_base(ws)
    fake_vllm.adapters[canary] = str(ws.adapters_dir / canary)
    res = check_canary(ws, TENANT, apply=True, server_url=fake_vllm.url)
    assert res["action"] == "rollback" and res["applied"]["rolled_back"] == canary
    assert res["applied"]["traffic_to"] == ws.config.base_model
    assert fake_vllm.calls == [("unload_lora_adapter", canary)]
    with session_scope(ws.database_url) as s:
        assert registry.get_alias(s, TENANT, "canary") is None
        assert registry.get_version(s, TENANT, canary).state == "rejected"
    events = [(a, o) for a, o, _, _ in history(ws, canary)]
    assert events[-3:] == [
        ("canary_check", "rollback"),
        ("transition", "rejected"),
        ("rollback", "rejected"),
    ]
    assert history(ws, canary)[-1][2] == "canary-watch"


def test_apply_promotes_a_better_canary(empty_workspace: Workspace, fake_vllm: FakeVllm) -> None:
    ws = empty_workspace
    production = add_adapter(ws, 1, "production", alias="production")
    canary = add_adapter(ws, 2, "canary", alias="canary")
    add_votes(ws, canary, 5, 95, AFTER)
    add_votes(ws, production, 270, 630, AFTER)
    res = check_canary(ws, TENANT, apply=True, server_url=fake_vllm.url)
    assert res["action"] == "promote" and res["production"] == production
    assert res["applied"]["version"] == canary and res["applied"]["previous"] == production
    assert ("load_lora_adapter", canary) in fake_vllm.calls
    with session_scope(ws.database_url) as s:
        alias = registry.get_alias(s, TENANT, "production")
        assert alias is not None and alias.model_version == canary
        assert registry.get_version(s, TENANT, production).state == "retired"


def test_wait_applies_nothing_and_the_configured_policy_is_used(
    empty_workspace: Workspace,
) -> None:
    ws = empty_workspace
    canary = worse_canary_on_base(ws)
    ws.config.deploy.canary = CanaryPolicy(min_samples=101)  # the canary has 100 votes
    res = check_canary(ws, TENANT, apply=True, server_url=DEAD_SERVER)
    assert res["action"] == "wait" and res["applied"] is None
    assert res["metrics"]["thumbs_down_rate"]["verdict"] == "too few votes"
    assert history(ws, canary)[-1][:2] == ("canary_check", "wait")


def test_without_a_canary_the_check_says_what_to_do(empty_workspace: Workspace) -> None:
    with pytest.raises(RegistryError, match="no canary to check.*ct-llm deploy"):
        check_canary(empty_workspace, TENANT, apply=False)


def test_a_changed_vote_counts_once(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    with session_scope(ws.database_url) as s:
        s.add(logged_response(TENANT, "r1", "v", "u1"))
        for i, value in enumerate([False, True]):  # the same user on the same answer
            s.add(
                FeedbackEvent(
                    tenant=TENANT,
                    event_id=f"e{i}",
                    payload_hash="-",
                    kind="thumbs",
                    value=value,
                    response_id="r1",
                    user_id="u1",
                    model_version="v",
                    received_at=AFTER,
                )
            )
    with session_scope(ws.database_url) as s:
        canary, production = canary_stats(s, TENANT, "v", "base", DEPLOYED)
    assert canary == ArmFeedback(thumbs=1, thumbs_down=0) and production == ArmFeedback()


def test_cli_reports_without_applying(empty_workspace: Workspace) -> None:
    ws = empty_workspace
    canary = worse_canary_on_base(ws)
    runner = CliRunner()
    args = ["canary", "--workspace", str(ws.root), "--tenant", TENANT]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["action"] == "rollback"
    res = runner.invoke(app, args)
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())  # the console wraps at its width
    assert text.startswith(f"canary {canary} vs {ws.config.base_model}: ROLLBACK (not applied;")
    assert "run with --apply) thumbs-down rate: canary 40.0% (100 votes)" in text
    with session_scope(ws.database_url) as s:
        assert registry.get_version(s, TENANT, canary).state == "canary"


def test_policy_in_the_workspace_file_is_validated(tmp_path: Path) -> None:
    from ct_llm.config import load_config
    from ct_llm.errors import ConfigError

    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("deploy:\n  canary:\n    alpha: 0.01\n    metrics: [thumbs_down_rate]\n")
    policy = load_config(cfg, environ={}).deploy.canary
    assert policy.alpha == 0.01 and policy.metrics == ["thumbs_down_rate"]
    cfg.write_text("deploy:\n  canary:\n    max_sample: 10\n")
    with pytest.raises(ConfigError, match="unknown key 'deploy.canary.max_sample'"):
        load_config(cfg, environ={})


def test_votes_that_name_no_logged_response_decide_nothing(empty_workspace: Workspace) -> None:
    """Issue 17's attack: 300 free-standing "votes" claiming the canary's version, with invented
    user ids, turned "wait" into "promote". They still reach curation; they never count here."""
    ws = empty_workspace
    canary = add_adapter(ws, 1, "canary", alias="canary")
    with session_scope(ws.database_url) as s:
        for i in range(300):
            s.add(
                FeedbackEvent(
                    tenant=TENANT,
                    event_id=f"fake-{i}",
                    payload_hash="-",
                    kind="thumbs",
                    value=True,
                    response_id=None,
                    user_id=f"invented-{i}",
                    model_version=canary,
                    messages=[{"role": "user", "content": "q"}],
                    response="a",
                    received_at=AFTER,
                )
            )
    with session_scope(ws.database_url) as s:
        arm, _ = canary_stats(s, TENANT, canary, ws.config.base_model, DEPLOYED)
    assert arm == ArmFeedback()
    assert check_canary(ws, TENANT, apply=False)["action"] == "wait"
