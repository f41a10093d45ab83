"""The GPU paths of `train_adapter` on the real SmolLM2 model: a 4-bit QLoRA step, bf16 steps
(both DPO engines) and FlashAttention-2 (TRL engine). Each must give a finite loss, LoRA weights
that moved from their initialisation, throughput metrics and a GPU memory figure. Skipped
without CUDA (tests/gpu/conftest.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
from dataset_files import tiny_dpo_dataset

from ct_llm.train.recipe import load_recipe

RECIPE = "recipes/smollm2-135m/dpo_cpu.yaml"
# Three logged steps; no replay prompts (their answers would be generated first, which is not
# what these tests are about).
SHORT = ["max_steps=3", "logging_steps=1", "warmup_steps=0", "replay_prompts=null"]


def _tiny_dataset(root: Path) -> Path:
    return tiny_dpo_dataset(root)


def _train(
    tmp_path: Path, base_model_dir: Path, overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], Path, Any]:
    """Train with the overrides; return the metrics, the adapter folder and the loaded model."""
    from ct_llm.train import common
    from ct_llm.train.runner import train_adapter

    loaded: list[Any] = []
    load_model = common.load_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        loaded.append(load_model(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(common, "load_model", spy)
    recipe = load_recipe(RECIPE, SHORT + overrides)
    out = tmp_path / "adapter"
    metrics = train_adapter(recipe, base_model_dir, _tiny_dataset(tmp_path / "ds"), out)
    assert len(loaded) == 1
    return metrics, out, loaded[0]


def _check_trained(metrics: dict[str, Any], out: Path) -> None:
    import torch
    from safetensors.torch import load_file

    assert metrics["steps"] == 3
    assert math.isfinite(metrics["final_loss"])
    # No init_adapter: a fresh adapter, whose lora_B starts at 0 (so B @ A = 0). Every one moved.
    weights = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b, sorted(weights)[:5]
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert all(w.abs().max() > 0 for w in lora_b)
    assert metrics["peak_cuda_mb"] > 0
    assert metrics["tokens_per_s"] > 0
    from ct_llm.train.throughput import peak_flops

    if peak_flops(torch.cuda.get_device_name()) is not None:
        assert 0 < metrics["mfu"] < 1
    else:  # a GPU missing from the peak table: no MFU, and the table should learn it
        assert "mfu" not in metrics


def test_qlora_step_trains_on_a_4bit_base(
    tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("QLoRA needs the [quantization] extra (bitsandbytes)")
    import bitsandbytes as bnb

    metrics, out, model = _train(tmp_path, base_model_dir, ["qlora=true"], monkeypatch)
    _check_trained(metrics, out)
    # Every adapted linear layer wraps a 4-bit bitsandbytes layer; the LM head stays unquantized.
    bases = [m.base_layer for m in model.modules() if hasattr(m, "base_layer")]
    assert bases and all(isinstance(b, bnb.nn.Linear4bit) for b in bases)


@pytest.mark.parametrize("engine", ["shared_prompt", "trl"])
def test_bf16_step_trains(
    tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    import torch

    metrics, out, model = _train(
        tmp_path,
        base_model_dir,
        ["qlora=false", f"dpo_engine={engine}"],
        monkeypatch,
    )
    _check_trained(metrics, out)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)


def test_flash_attention_2_step_trains(
    tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("flash_attn") is None:
        pytest.skip("FlashAttention-2 needs the flash-attn package")
    metrics, out, model = _train(
        tmp_path,
        base_model_dir,
        ["attn_implementation=flash_attention_2", "dpo_engine=trl"],
        monkeypatch,
    )
    _check_trained(metrics, out)
    assert model.config._attn_implementation == "flash_attention_2"
