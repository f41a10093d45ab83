"""The DPO runner on the real SmolLM2-135M (CPU, a few steps on a tiny dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_files import write_manifest, write_split

from ct_llm.atomic import process_umask
from ct_llm.errors import NoDataError
from ct_llm.train.recipe import Recipe

pytestmark = pytest.mark.integration

SYSTEM = {"role": "system", "content": "You are a shop assistant."}


def _dataset(root: Path) -> Path:
    root.mkdir()
    rows = []
    for q in [
        "How long do I have to return shoes?",
        "What is the return window?",
        "Can I send my tent back?",
        "Until when are returns accepted?",
    ]:
        rows.append(
            {
                "prompt": [SYSTEM, {"role": "user", "content": q}],
                "chosen": [{"role": "assistant", "content": "You have 60 days to return it."}],
                "rejected": [{"role": "assistant", "content": "Returns are not possible, sorry."}],
            }
        )
    write_split(root, "dpo", "train", rows)
    thumbs = {
        "prompt": [SYSTEM, {"role": "user", "content": "Hi!"}],
        "completion": [{"role": "assistant", "content": "Hello! How can I help?"}],
        "label": True,
    }
    write_split(root, "kto", "train", [thumbs])
    write_manifest(root, "t-data-v1")
    return root


def _recipe(**kw: object) -> Recipe:
    base = dict(
        max_steps=2,
        per_device_train_batch_size=2,
        max_length=64,
        learning_rate=5e-3,
        lora={"r": 4, "alpha": 8},
        sft_weight=1.0,
        seed=3,
        logging_steps=1,
    )
    return Recipe.model_validate({**base, **kw})


def _lora_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_train_adapter_then_warm_start(tmp_path: Path, base_model_dir: Path) -> None:
    from ct_llm.train.runner import train_adapter

    data = _dataset(tmp_path / "data")
    out = tmp_path / "adapters" / "v1"
    logs: list[dict] = []
    metrics = train_adapter(_recipe(), base_model_dir, data, out, on_log=logs.append)

    assert metrics["steps"] == 2 and metrics["train_pairs"] == 4 and metrics["anchors"] == 1
    assert "final_loss" in metrics and "rewards/margins" in metrics
    assert [entry["step"] for entry in logs if "loss" in entry] == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    assert not list(out.parent.glob(".*"))  # no temp folders left beside the artifact
    # safetensors writes 0600; the folder is published with modes by the umask, so a vLLM
    # server running as another user can read it.
    readable = 0o666 & ~process_umask()
    assert all(p.stat().st_mode & 0o777 == readable for p in out.iterdir())
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base_model_dir.resolve())
    assert cfg["r"] == 4
    tensors = _lora_tensors(out)
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b and len(lora_b) == len(tensors) // 2
    # PEFT initialises every lora_B to zero; training must have moved them.
    assert all(float(t.abs().max()) > 0 for t in lora_b)
    record = json.loads((out / "manifest.json").read_text())
    assert record["dataset"]["version"] == "t-data-v1"
    assert len(record["dataset"]["manifest_sha256"]) == 64
    assert record["recipe"]["lora"]["r"] == 4 and record["seed"] == 3
    assert record["metrics"]["steps"] == 2 and record["log_history"]

    # Warm start from v1: trains the same adapter further; the frozen reference copy that TRL
    # adds is not part of the artifact.
    out2 = tmp_path / "adapters" / "v2"
    train_adapter(_recipe(max_steps=1), base_model_dir, data, out2, init_adapter=out)
    assert not (out2 / "ref").exists()
    before, after = _lora_tensors(out), _lora_tensors(out2)
    assert before.keys() == after.keys()
    assert any(not before[k].equal(after[k]) for k in before)
    record2 = json.loads((out2 / "manifest.json").read_text())
    assert record2["init_adapter"] == str(out.resolve())


def test_kl_anchors_train_and_report_their_divergence(tmp_path: Path, base_model_dir: Path) -> None:
    from ct_llm.train.runner import train_adapter

    data = _dataset(tmp_path / "data")
    logs: list[dict] = []
    recipe = _recipe(anchor_loss="kl", anchor_topk=8, per_device_train_batch_size=5)
    metrics = train_adapter(recipe, base_model_dir, data, tmp_path / "v1", on_log=logs.append)
    assert metrics["anchors"] == 1
    kl = [entry["anchors/kl"] for entry in logs if "anchors/kl" in entry]
    # step 1 runs the starting model itself (the adapter is the identity): KL 0; step 2 has moved
    assert len(kl) == 2 and kl[0] == pytest.approx(0.0, abs=1e-4) and kl[1] > kl[0]
    # the pairs' statistics leave the anchor out: every real pair ranked right is accuracy 1
    assert metrics["rewards/accuracies"] == 1.0


def test_empty_dataset_is_no_data(tmp_path: Path, base_model_dir: Path) -> None:
    from ct_llm.train.runner import train_adapter

    data = tmp_path / "data"
    data.mkdir()
    write_split(data, "dpo", "train", [])
    with pytest.raises(NoDataError):
        train_adapter(_recipe(), base_model_dir, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()
