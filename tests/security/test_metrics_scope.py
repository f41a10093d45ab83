"""`GET /metrics` shows a key what it may see and stays bounded whatever clients send (README
"Trust model", issue 17): a tenant's admin key its own tenant's series only, an operator key
every tenant's and nothing besides /metrics; model_version labels are names the registry knows
(or the base model's, or `unknown`), so invented names in feedback add no series."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_model_server import FakeModelServer
from fastapi.testclient import TestClient
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from ct_llm.gateway.app import create_app
from ct_llm.gateway.auth import create_api_key
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

ACME_V1 = "acme-assistant-v1"
BASE = "smollm2-135m-instruct"  # what the gateway records for chats the base model answers
SHARED = {"ct_llm_store_up", "ct_llm_store_snapshot_age_seconds"}

Series = set[tuple[str, tuple[tuple[str, str], ...]]]


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def series(text: str) -> Series:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def label_values(text: str, label: str) -> set[str]:
    return {dict(labels)[label] for _, labels in series(text) if label in dict(labels)}


def scrape(client: TestClient, key: str) -> str:
    r = client.get("/metrics", headers=h(key))
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture
def keys(ws: Workspace) -> dict[str, str]:
    url = ws.database_url
    return {
        "acme": create_api_key(url, "acme", "ingest"),
        "acme_admin": create_api_key(url, "acme", "admin"),
        "globex": create_api_key(url, "globex", "ingest"),
        "globex_admin": create_api_key(url, "globex", "admin"),
        # An operator key is made for a tenant like any key (to name and revoke it) but reads
        # every tenant's metrics.
        "operator": create_api_key(url, "ops", "operator"),
    }


def chat_and_vote(client: TestClient, key: str, event_id: str, value: bool) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Return window?"}]}
    r = client.post("/v1/chat/completions", json=body, headers=h(key))
    assert r.status_code == 200, r.text
    event = {"event_id": event_id, "kind": "thumbs", "value": value, "response_id": r.json()["id"]}
    assert client.post("/v1/feedback", json=event, headers=h(key)).json()["accepted"] == 1


@pytest.fixture
def traffic(ws: Workspace, client: TestClient, keys: dict[str, str]) -> None:
    """acme is served its production adapter, globex the base model; one vote each; a cycle
    each in the lineage log (store series)."""
    with session_scope(ws.database_url) as s:
        registry.register_adapter(s, "acme", ACME_V1, 1, "p", None, None, {})
        registry.set_alias(s, "acme", "production", ACME_V1)
        for tenant in ("acme", "globex"):
            registry.record(s, tenant, None, "cycle", "skipped", "test", {"duration_s": 1.0})
    chat_and_vote(client, keys["acme"], "a1", False)
    chat_and_vote(client, keys["globex"], "g1", True)


def test_a_tenant_admin_sees_only_its_own_tenants_series(
    client: TestClient, keys: dict[str, str], traffic: None
) -> None:
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        text = scrape(client, keys[f"{tenant}_admin"])
        assert other not in text  # not in a label, a version name, anywhere
        for name, labels in series(text):
            assert dict(labels).get("tenant") == tenant or (name in SHARED and not labels), name
        seen = {name for name, _ in series(text)}
        for name in (
            "ct_llm_chat_requests_total",
            "ct_llm_chat_latency_seconds_count",
            "ct_llm_feedback_events_total",
            "ct_llm_feedback_request_seconds_count",
            "ct_llm_store_feedback_events_total",
            "ct_llm_store_thumbs_total",
            "ct_llm_cycles_total",
        ):
            assert name in seen, (tenant, name)
    # Thumbs counters carry the tenant, and a base-model chat keeps the base model's name.
    acme = series(scrape(client, keys["acme_admin"]))
    assert (
        "ct_llm_thumbs_down_events_total",
        (("model_version", ACME_V1), ("tenant", "acme")),
    ) in acme
    globex = series(scrape(client, keys["globex_admin"]))
    assert (
        "ct_llm_thumbs_up_events_total",
        (("model_version", BASE), ("tenant", "globex")),
    ) in globex


def test_an_operator_sees_every_tenant_and_may_do_nothing_else(
    client: TestClient, keys: dict[str, str], traffic: None
) -> None:
    text = scrape(client, keys["operator"])
    assert label_values(text, "tenant") == {"acme", "globex"}  # not its own tenant, "ops"
    for name in ("ct_llm_feedback_events_total", "ct_llm_store_thumbs_total"):
        tenants = {dict(labels).get("tenant") for n, labels in series(text) if n == name}
        assert tenants == {"acme", "globex"}, name
    assert ("ct_llm_store_read_seconds", ()) in series(text)  # operator-only health
    assert ("ct_llm_store_read_seconds", ()) not in series(scrape(client, keys["acme_admin"]))

    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    event = {"event_id": "op", "kind": "thumbs", "value": True, "messages": chat["messages"]}
    forbidden: list[tuple[str, str, Any]] = [
        ("POST", "/v1/chat/completions", chat),
        ("POST", "/v1/feedback", {**event, "response": "a"}),
        ("GET", "/v1/feedback/stats", None),
        ("GET", "/v1/status", None),
        ("GET", "/v1/admin/status.html", None),
        ("POST", "/v1/admin/rollback", None),
        ("POST", "/v1/admin/promote", None),
        ("POST", "/v1/admin/canary", {"version": ACME_V1}),
    ]
    for method, path, body in forbidden:
        r = client.request(method, path, json=body, headers=h(keys["operator"]))
        assert r.status_code == 403, (path, r.text)
        assert "role 'operator' may not" in r.json()["error"]["message"]
    # An ingest key may not scrape at all; the answer names the roles that may.
    r = client.get("/metrics", headers=h(keys["acme"]))
    assert r.status_code == 403 and "'admin' or 'operator'" in r.json()["error"]["message"]


def test_a_series_without_a_tenant_label_reaches_operators_only(
    client: TestClient, keys: dict[str, str]
) -> None:
    class Unlabelled:  # a collector added later that forgot the tenant label
        def collect(self) -> list[GaugeMetricFamily]:
            return [GaugeMetricFamily("ct_llm_forgot_tenant", "no tenant label", value=42)]

    client.app.state.gateway.metrics.registry.register(Unlabelled())  # type: ignore[attr-defined]
    assert ("ct_llm_forgot_tenant", ()) in series(scrape(client, keys["operator"]))
    assert ("ct_llm_forgot_tenant", ()) not in series(scrape(client, keys["acme_admin"]))


def invented(i: int) -> dict[str, Any]:
    """A free-standing event (no response_id) naming a model_version nobody registered."""
    return {
        "event_id": f"flood-{i}",
        "kind": "thumbs",
        "value": i % 2 == 0,
        "messages": [{"role": "user", "content": f"question {i}"}],
        "response": "answer",
        "model_version": f"invented-version-{i}",
    }


def test_invented_model_versions_add_no_series(
    ws: Workspace,
    client: TestClient,
    keys: dict[str, str],
    model_server: FakeModelServer,
    traffic: None,
) -> None:
    before = scrape(client, keys["operator"])  # the first scrape also reads the store
    known = {ACME_V1, BASE}
    assert label_values(before, "model_version") <= known | {"unknown"}
    for start in range(0, 2000, 500):
        batch = {"events": [invented(i) for i in range(start, start + 500)]}
        r = client.post("/v1/feedback", json=batch, headers=h(keys["acme"]))
        assert r.json()["accepted"] == 500, r.text
    after = scrape(client, keys["operator"])
    # A fresh API process reads the store now (the first one's store read is cached for 30 s).
    fresh_app = create_app(ws, "http://model-server.test")
    fresh_app.state.gateway.new_client = lambda: httpx.AsyncClient(
        transport=httpx.MockTransport(model_server.handle)
    )
    with TestClient(fresh_app) as fresh_client:
        fresh = scrape(fresh_client, keys["operator"])

    for text in (after, fresh):
        assert label_values(text, "model_version") <= known | {"unknown"}
        assert not any("invented" in value for _, labels in series(text) for _, value in labels)
    # In process: the 2,000 votes land on one `unknown` series per vote, and their counts.
    acme_unknown = (("model_version", "unknown"), ("tenant", "acme"))
    assert ("ct_llm_thumbs_down_events_total", acme_unknown) in series(after)
    assert len(after) - len(before) < 2_000, len(after) - len(before)  # 335 KB before the fix
    # In the store: all 2,000 events counted under `unknown`, in a few bounded lines.
    thumbs = {
        (dict(labels)["vote"], value)
        for family in text_string_to_metric_families(fresh)
        for name, labels, value in ((s.name, s.labels, s.value) for s in family.samples)
        if name == "ct_llm_store_thumbs_total"
        and labels.get("tenant") == "acme"
        and labels.get("model_version") == "unknown"
    }
    assert thumbs == {("down", 1000.0), ("up", 1000.0)}
    store_lines = [line for line in fresh.splitlines() if line.startswith("ct_llm_store_")]
    assert len(store_lines) < 40, store_lines
