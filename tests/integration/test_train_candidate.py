"""`train_candidate`: the adapter's manifest carries its lineage, and a candidate trained without
a named recipe reuses the production adapter's settings and warm-starts from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tiny_models import FEEDBACK_TENANT, curated_workspace

from ct_llm.curate.dataset import latest_dataset
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.train.candidate import train_candidate
from ct_llm.train.manifest import adapter_files_sha256, config_sha256, model_sha256

pytestmark = pytest.mark.integration

TENANT = FEEDBACK_TENANT
RECIPE = {
    "method": "dpo",
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "max_length": 96,
    "learning_rate": 3e-3,
    "beta": 0.2,
    "lora": {"r": 4, "alpha": 8},
    "thumbs_up_anchors": False,
}


def test_manifest_lineage_and_reuse_of_production_settings(
    tmp_path: Path, base_model_dir: Path
) -> None:
    ws = curated_workspace(tmp_path / "ws", base_model_dir)
    with session_scope(ws.database_url) as session:
        dataset = latest_dataset(session, TENANT)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))

    first = train_candidate(ws, TENANT, recipe_path=str(recipe_file))
    adapter = Path(first["path"])
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["version"] == first["version"] and manifest["tenant"] == TENANT
    assert manifest["dataset_version"] == dataset.id
    assert manifest["parent_version"] is None and manifest["warm_start"] is False
    assert manifest["base_model"]["sha256"] == model_sha256(ws.base_model_dir)
    assert manifest["recipe_sha256"] == config_sha256(manifest["recipe"])
    assert manifest["files"] == adapter_files_sha256(adapter)
    assert manifest["recipe"]["beta"] == 0.2
    for key in ("wall_time_s", "tokens_per_s", "final_loss"):
        assert key in manifest["metrics"]

    with session_scope(ws.database_url) as session:
        registry.set_alias(session, TENANT, registry.PRODUCTION, first["version"])
    second = train_candidate(ws, TENANT, overrides=["max_steps=1"])
    m2 = json.loads((Path(second["path"]) / "manifest.json").read_text())
    assert m2["parent_version"] == first["version"] and m2["warm_start"] is True
    assert m2["recipe_file"] == f"{first['version']} (its manifest)"
    assert m2["recipe"] == {**manifest["recipe"], "max_steps": 1}
    assert m2["init_adapter"] == str(adapter.resolve())


def test_search_trains_each_trial_and_keeps_the_best(tmp_path: Path, base_model_dir: Path) -> None:
    ws = curated_workspace(tmp_path / "ws", base_model_dir)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump({**RECIPE, "search": {"trials": 3, "minutes": 30}}))
    events: list[str] = []
    res = train_candidate(
        ws, TENANT, recipe_path=str(recipe_file), on_log=lambda e: events.append(str(e))
    )
    search = res["metrics"]["search"]
    assert [t["trial"] for t in search["trials"]] == [1, 2, 3]
    assert search["trials"][0]["overrides"] == {}
    best = max(search["trials"], key=lambda t: (t["heldout_accuracy"], t["heldout_margin"]))
    assert search["best_trial"] == best["trial"]
    assert all(0 <= t["heldout_accuracy"] <= 1 for t in search["trials"])
    manifest = json.loads((Path(res["path"]) / "manifest.json").read_text())
    assert manifest["search"]["best_trial"] == best["trial"]
    chosen = search["trials"][best["trial"] - 1]["overrides"]
    assert all(manifest["recipe"][k] == v for k, v in chosen.items())
    assert sorted(p.name for p in ws.adapters_dir.iterdir()) == [res["version"]]  # no trial debris
    assert any("search trial 3/3" in e for e in events)
