"""`ct-llm train --nproc 2`: real two-process data-parallel training on CPU (torchrun, gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_models import FEEDBACK_TENANT, curated_workspace

pytestmark = pytest.mark.integration

TENANT = FEEDBACK_TENANT


def test_two_cpu_processes_train_one_candidate(tmp_path: Path, base_model_dir: Path) -> None:
    ws = curated_workspace(tmp_path / "ws", base_model_dir)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "method": "dpo",
                "max_steps": 4,
                "save_steps": 2,
                "per_device_train_batch_size": 2,
                "max_length": 96,
                "learning_rate": 5e-3,
                "lora": {"r": 4, "alpha": 8},
                "thumbs_up_anchors": False,
                "logging_steps": 1,
            }
        )
    )
    cmd = [sys.executable, "-m", "ct_llm.cli", "train", "--workspace", str(ws.root)]
    cmd += ["--tenant", TENANT, "--recipe", str(recipe), "--nproc", "2", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["metrics"]["processes"] == 2
    assert out["metrics"]["steps"] == 4
    adapter = ws.adapters_dir / out["version"]
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    assert not (ws.checkpoints_dir / out["version"]).exists()
    record = json.loads((adapter / "manifest.json").read_text())
    assert record["metrics"]["processes"] == 2
