"""Every training method on a tiny random Llama (SmolLM2's tokenizer, a 2-layer model built from a
config), on a dataset version curated from synthetic feedback: fast checks of the real TRL
trainers, not of the model's quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.bench.feedback_data import load_into
from ct_llm.config import WorkspaceConfig
from ct_llm.curate.dataset import curate_dataset
from ct_llm.errors import NoDataError
from ct_llm.train.kto import balance_weights
from ct_llm.train.recipe import Recipe
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curated")
    ws = Workspace.init(root / "ws", WorkspaceConfig.model_validate({"tenant": "bench"}))
    load_into(ws.database_url, 600, seed=9)
    return curate_dataset(ws, "bench").path  # type: ignore[return-value]


def recipe(method: str, **extra: object) -> Recipe:
    return Recipe.model_validate(
        {
            "method": method,
            "max_steps": 2,
            "per_device_train_batch_size": 4,
            "max_length": 64,
            "learning_rate": 1e-2,
            "lora": {"r": 4, "alpha": 8},
            "seed": 1,
            **extra,
        }
    )


def lora_b_norm(adapter: Path) -> float:
    from safetensors.torch import load_file

    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    return sum(float(t.abs().sum()) for k, t in tensors.items() if "lora_B" in k)


@pytest.mark.parametrize("method", ["dpo", "kto", "sft"])
def test_each_method_trains_a_lora_that_loads_and_changes_outputs(
    method: str, tiny_model: Path, dataset_dir: Path, tmp_path: Path, capfd
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ct_llm.train.runner import train_adapter

    out = tmp_path / method
    capfd.readouterr()
    metrics = train_adapter(recipe(method), tiny_model, dataset_dir, out)
    assert capfd.readouterr().out == ""  # stdout is for `--json`: no trainer log lines there
    assert metrics["method"] == method and metrics["steps"] == 2 and "final_loss" in metrics
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    # LoRA's B matrices start at zero: non-zero means the trainer really updated them.
    assert lora_b_norm(out) > 0
    ids = torch.tensor([[1, 42, 420, 4200]])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(out))
        after = tuned(ids).logits
        again = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(out)
        )(ids).logits
    assert not torch.allclose(before, after)
    assert torch.equal(after, again)  # the saved adapter, reloaded, gives the same outputs
    if method == "kto":
        up, down = metrics["desirable"], metrics["undesirable"]
        ratio = metrics["desirable_weight"] * up / (metrics["undesirable_weight"] * down)
        assert ratio == pytest.approx(1.0)


def test_shared_prompt_engine_matches_trls_losses_step_by_step(
    tiny_model: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    """Same pairs, batches, seed and math: the two DPO engines must trace the same loss curve
    (the shared-prompt one computes it with the reference pass done once, up front)."""
    from ct_llm.train.runner import train_adapter

    curves = {}
    for engine in ("trl", "shared_prompt"):
        r = recipe("dpo", dpo_engine=engine, max_steps=4, learning_rate=5e-3, sft_weight=0.5)
        curves[engine] = train_adapter(r, tiny_model, dataset_dir, tmp_path / engine)["loss_curve"]
    assert len(curves["trl"]) == 4
    assert curves["shared_prompt"] == pytest.approx(curves["trl"], rel=1e-3)
    assert curves["trl"][-1] < curves["trl"][0]  # it did learn


def test_auto_picks_the_strongest_signal_the_version_has(
    tiny_model: Path, dataset_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from ct_llm.train.runner import train_adapter

    only_sft = tmp_path / "only-sft"
    shutil.copytree(dataset_dir, only_sft)
    shutil.rmtree(only_sft / "dpo")
    shutil.rmtree(only_sft / "kto")
    metrics = train_adapter(recipe("auto"), tiny_model, only_sft, tmp_path / "a")
    assert metrics["method"] == "sft"
    with pytest.raises(NoDataError, match="holds no KTO examples"):
        train_adapter(recipe("kto"), tiny_model, only_sft, tmp_path / "b")


def test_kto_with_one_label_only_is_refused_before_loading(tmp_path: Path) -> None:
    from dataset_files import write_split

    from ct_llm.train.runner import train_adapter

    row = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "completion": [{"role": "assistant", "content": "Hello!"}],
        "label": True,
    }
    write_split(tmp_path / "v", "kto", "train", [row, row])
    with pytest.raises(NoDataError, match="KTO needs both thumbs up and thumbs down"):
        # No model at this path: the check must come first.
        train_adapter(recipe("kto"), tmp_path / "no-model", tmp_path / "v", tmp_path / "out")


def test_kto_weights_balance_the_labels() -> None:
    assert balance_weights(10, 40) == (4.0, 1.0)
    assert balance_weights(40, 10) == (1.0, 4.0)
    assert balance_weights(5, 0) == (1.0, 1.0)
