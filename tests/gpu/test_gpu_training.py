"""The CUDA branches of the DPO runner (bf16, 4-bit QLoRA) on the real SmolLM2 model. The same
runner's logic is exercised on CPU by tests/integration/test_train.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from dataset_files import tiny_dpo_dataset

from ct_llm.train.recipe import load_recipe

RECIPE = "recipes/smollm2-135m/dpo_cpu.yaml"


def _tiny_dataset(root: Path) -> Path:
    return tiny_dpo_dataset(root)


@pytest.mark.parametrize("qlora", [False, True])
def test_cuda_dpo_trains_and_reports_gpu_memory(tmp_path: Path, base_model_dir: Path, qlora: bool):
    if qlora and importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("QLoRA needs the [quantization] extra (bitsandbytes)")
    from ct_llm.train.runner import train_adapter

    recipe = load_recipe(RECIPE, ["max_steps=4", f"qlora={str(qlora).lower()}"])
    out = tmp_path / "adapter"
    metrics = train_adapter(recipe, base_model_dir, _tiny_dataset(tmp_path / "ds"), out)
    assert (out / "adapter_model.safetensors").exists()
    assert metrics["peak_cuda_mb"] > 0
    record = json.loads((out / "manifest.json").read_text())
    assert record["device"] == "cuda"
