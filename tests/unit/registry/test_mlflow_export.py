"""Export to a real MLflow tracking store (SQLite): runs, model versions and aliases mirror the
registry, and a second export changes nothing but what changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ct_llm.registry import registry
from ct_llm.registry.mlflow_export import eval_metrics, export_to_mlflow
from ct_llm.store.db import session_scope
from ct_llm.store.models import EvalReport
from ct_llm.workspace import Workspace

SUMMARY = {
    "suites": {
        "general": {
            "kind": "regression",
            "candidate_pass_rate": 0.9,
            "baseline_pass_rate": 1.0,
            "n": 10,
        }
    },
    "judge": {"rate": 0.6, "low": 0.45, "high": 0.73},
    "rag": {"faithfulness": {"candidate": 0.8, "baseline": 0.7}},
    "latency": {"candidate": {"p95_ms": 120.0}},
    "canaries": {"count": 2, "candidate_leaks": 0},
}


def test_eval_metrics_are_flat_numbers() -> None:
    assert eval_metrics(SUMMARY) == {
        "regression.general.pass_rate": 0.9,
        "regression.general.production_pass_rate": 1.0,
        "judge.win_rate": 0.6,
        "judge.win_rate_low": 0.45,
        "judge.win_rate_high": 0.73,
        "rag.faithfulness": 0.8,
        "latency.p95_ms": 120.0,
        "canary_leaks": 0.0,
    }
    assert eval_metrics(None) == {}


def test_export_mirrors_versions_and_aliases(tmp_path: Path) -> None:
    pytest.importorskip(
        "mlflow", reason="the [mlflow] extra is not installed"
    )  # make test installs it
    from mlflow import MlflowClient

    ws = Workspace.init(tmp_path / "ws")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with session_scope(ws.database_url) as session:
        for n in (1, 2):
            registry.register_adapter(
                session, "default", f"default-assistant-v{n}", n, f"/a/{n}", None, None, {}
            )
        session.add(
            EvalReport(
                id="r2",
                tenant="default",
                candidate="default-assistant-v2",
                baseline="default-assistant-v1",
                path="/r2",
                summary=SUMMARY,
            )
        )
        for state in ("approved", "canary", "production"):
            registry.set_state(session, "default", "default-assistant-v1", state)
        registry.set_alias(session, "default", "production", "default-assistant-v1")
        registry.set_state(session, "default", "default-assistant-v2", "approved")
        registry.set_state(session, "default", "default-assistant-v2", "canary")
        registry.set_alias(session, "default", "canary", "default-assistant-v2", 0.1)

    first = export_to_mlflow(ws, "default", uri)
    assert first["versions"] == {"default-assistant-v1": "1", "default-assistant-v2": "2"}
    client = MlflowClient(tracking_uri=uri)
    assert str(client.get_model_version_by_alias("default-assistant", "production").version) == "1"
    assert str(client.get_model_version_by_alias("default-assistant", "canary").version) == "2"
    run = client.get_run(client.get_model_version("default-assistant", "2").run_id)
    assert run.data.metrics["judge.win_rate_low"] == 0.45
    assert run.data.tags["ct_llm.state"] == "canary"

    # Promote v2 in ct-llm: the export moves the alias, removes `canary`, creates nothing new.
    with session_scope(ws.database_url) as session:
        registry.set_alias(session, "default", "production", "default-assistant-v2")
        registry.clear_alias(session, "default", "canary")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ct_llm.cli",
            "export",
            "--tracking-uri",
            uri,
            "-w",
            str(ws.root),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    second = json.loads(out.stdout)
    assert second["versions"] == first["versions"]
    assert second["aliases"] == {"production": "2", "canary": None}
    model = client.get_registered_model("default-assistant")
    assert {k: str(v) for k, v in model.aliases.items()} == {"production": "2"}
    assert len(client.search_model_versions("name = 'default-assistant'")) == 2
