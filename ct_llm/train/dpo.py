"""DPO training of a LoRA adapter with TRL: setup -> build -> fit -> save.

Input: a curated dataset version in the layout of `ct_llm.curate.layout` (`dpo/train.parquet`,
plus `kto/train.parquet` and `sft/train.parquet` for anchors, and `manifest.json`). Output: one
adapter folder written atomically (`adapter_model.safetensors`, `adapter_config.json`,
`ct-llm-train.json`).
The reference policy is the model the adapter starts from (no second model in memory): the base
model with the adapter disabled, or, on a warm start, a frozen copy of the starting adapter.

CPU is the default path (fp32, which is what CPU kernels are fast at); bf16 and 4-bit QLoRA are
used only when CUDA is present.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_directory, atomic_write_json, sha256_file
from ct_llm.config import REPO_ROOT
from ct_llm.curate.layout import read_rows, split_path
from ct_llm.errors import ConfigError, NoDataError
from ct_llm.train.recipe import Recipe, recipe_to_dict

RECORD_FILE = "ct-llm-train.json"
_PAIR_KEYS = ("prompt", "chosen", "rejected")
# Metrics copied from the last TRL log that has them into the returned summary.
_FINAL_KEYS = (
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
)


def load_pairs(dataset_dir: Path) -> list[dict[str, Any]]:
    """The preference pairs of a dataset version (`dpo/train.parquet`), reduced to what DPO
    reads."""
    path = split_path(dataset_dir, "dpo", "train")
    if not path.is_file():
        if (dataset_dir / "manifest.json").is_file():
            # A split with no rows has no file: the version exists but holds no pairs.
            raise NoDataError(
                f"dataset version {dataset_dir} holds no preference pairs (no {path.name} in "
                f"{path.parent}); collect edit feedback and run `ct-llm curate`"
            )
        raise NoDataError(f"{path} does not exist; run `ct-llm curate` to write a dataset version")
    rows = read_split(dataset_dir, "dpo", "train")
    pairs = []
    for n, row in enumerate(rows, 1):
        missing = [k for k in _PAIR_KEYS if not row.get(k)]
        if missing:
            raise ConfigError(f"{path} row {n} lacks {', '.join(missing)}; re-run `ct-llm curate`")
        pairs.append({k: row[k] for k in _PAIR_KEYS})
    if not pairs:
        raise NoDataError(
            f"{path} holds no preference pairs; collect edit feedback and run `ct-llm curate`"
        )
    return pairs


def read_split(dataset_dir: Path, kind: str, split: str = "train") -> list[dict[str, Any]]:
    """`read_rows`, with an unreadable file reported as a ConfigError naming it."""
    import pyarrow as pa

    try:
        return read_rows(dataset_dir, kind, split)
    except (pa.ArrowException, OSError) as e:
        path = split_path(dataset_dir, kind, split)
        raise ConfigError(
            f"{path} is not a readable Parquet file ({e}); re-run `ct-llm curate`"
        ) from None


def _dataset_info(dataset_dir: Path) -> dict[str, Any]:
    manifest = dataset_dir / "manifest.json"
    if not manifest.is_file():
        return {"path": str(dataset_dir), "version": None, "manifest_sha256": None}
    data = json.loads(manifest.read_text())
    return {
        "path": str(dataset_dir),
        "version": data.get("version"),
        "manifest_sha256": sha256_file(manifest),
        "files": data.get("files"),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_model(recipe: Recipe, base_model_dir: Path, init_adapter: Path | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16
        if recipe.qlora:
            from transformers import BitsAndBytesConfig  # needs bitsandbytes: CUDA-only extra

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
            )
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), **kwargs)
    if recipe.qlora and torch.cuda.is_available():
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing
        )
    if init_adapter is not None:
        from peft import PeftModel

        if not (init_adapter / "adapter_config.json").is_file():
            raise ConfigError(f"warm-start adapter {init_adapter} has no adapter_config.json")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    return model


def _lora_config(recipe: Recipe) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=recipe.lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _dpo_args(recipe: Recipe, scratch: Path) -> Any:
    import torch
    from trl import DPOConfig

    cuda = torch.cuda.is_available()
    losses, weights = [recipe.loss_type], [1.0]
    if recipe.sft_weight > 0:
        losses.append("sft")
        weights.append(recipe.sft_weight)
    # transformers 5 renamed gradient checkpointing; the old name (TRL's default) only warns.
    field = "activation_checkpointing"
    if field not in getattr(DPOConfig, "__dataclass_fields__", {}):
        field = "gradient_checkpointing"
    checkpointing = {field: recipe.gradient_checkpointing}
    return DPOConfig(
        output_dir=str(scratch),  # TRL's scratch space; never part of the artifact
        use_cpu=not cuda,
        bf16=cuda,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_steps,
        max_steps=recipe.max_steps,
        num_train_epochs=recipe.num_epochs,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        beta=recipe.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=recipe.max_length,
        **checkpointing,
        seed=recipe.seed,
        data_seed=recipe.seed,
        logging_steps=recipe.logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _log_callback(on_log: Callable[[dict[str, Any]], None] | None) -> Any:
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if on_log is not None and logs:
                on_log({"step": state.global_step, "max_steps": state.max_steps, **logs})

    return _Forward()


def _anchors(recipe: Recipe, model: Any, tokenizer: Any, dataset_dir: Path) -> list[dict[str, Any]]:
    if recipe.sft_weight == 0:
        return []  # without the SFT term anchors would get no gradient at all
    from ct_llm.train.replay import replay_anchors, thumbs_up_anchors

    anchors = thumbs_up_anchors(dataset_dir) if recipe.thumbs_up_anchors else []
    if recipe.replay_prompts:
        anchors += replay_anchors(
            model, tokenizer, recipe.replay_prompts, recipe.replay_max_new_tokens
        )
    return anchors


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _summarise(
    history: list[dict[str, Any]], steps: int, wall: float, n_pairs: int
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "steps": steps,
        "train_pairs": n_pairs,
        "wall_time_s": round(wall, 2),
        "peak_rss_mb": _peak_rss_mb(),
    }
    for entry in history:
        for key in _FINAL_KEYS:
            if key in entry:
                metrics[key if key != "loss" else "final_loss"] = entry[key]
        if "train_loss" in entry:
            metrics["train_loss"] = entry["train_loss"]
    first = next((e for e in history if "rewards/margins" in e), None)
    if first is not None:
        metrics["first_margins"] = first["rewards/margins"]
    return metrics


def _write_adapter(model: Any, tmp: Path, base_model_dir: Path) -> None:
    # A warm start adds a frozen "ref" copy of the adapter; only the trained one is the artifact.
    model.save_pretrained(str(tmp), selected_adapters=["default"], safe_serialization=True)
    # PEFT's generic model card says nothing true about this adapter; ct-llm-train.json does.
    (tmp / "README.md").unlink(missing_ok=True)
    cfg_path = tmp / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    # vLLM and PEFT resolve the base from this field; point it at the local folder we trained on.
    cfg["base_model_name_or_path"] = str(base_model_dir.resolve())
    atomic_write_json(cfg_path, cfg)


def train_adapter(
    recipe: Recipe,
    base_model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    *,
    init_adapter: Path | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter with DPO on `dataset_dir` and write it to `output_dir`.

    Returns the final metrics (train loss, reward accuracy and margins, steps, wall time, peak
    memory). Anchors have a reward margin of exactly 0, so with anchors `rewards/accuracies`
    stays below 1 even when every real pair is ranked right.
    """
    # setup
    if recipe.method != "dpo":
        raise ConfigError(f"recipe method '{recipe.method}' is not supported by the DPO runner")
    if output_dir.exists():
        raise ConfigError(
            f"{output_dir} already exists; adapters are immutable, pick a new version"
        )
    pairs = load_pairs(dataset_dir)
    dataset = _dataset_info(dataset_dir)
    started = time.monotonic()

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    # PEFT and TRL still read transformers' deprecated `is_gradient_checkpointing`; the warning
    # is theirs to fix and says nothing to a ct-llm user.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    seed_everything(recipe.seed)
    if on_log is not None:
        # The caller prints progress its own way; library progress bars would interleave with it.
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    # build
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(recipe, base_model_dir, init_adapter)
    anchors = _anchors(recipe, model, tokenizer, dataset_dir)
    rows = pairs + anchors
    with tempfile.TemporaryDirectory(prefix="ct-llm-trl-") as scratch:
        trainer = DPOTrainer(
            model=model,
            ref_model=None,
            args=_dpo_args(recipe, Path(scratch)),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=None if init_adapter is not None else _lora_config(recipe),
            callbacks=[_log_callback(on_log)],
        )
        if on_log is not None:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # the caller prints progress its own way
        # fit
        trainer.train()
    wall = time.monotonic() - started
    metrics = _summarise(trainer.state.log_history, trainer.state.global_step, wall, len(pairs))
    metrics["anchors"] = len(anchors)
    if torch.cuda.is_available():
        metrics["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # save
    record = {
        "method": recipe.method,
        "recipe": recipe_to_dict(recipe),
        "seed": recipe.seed,
        "git_commit": _git_commit(),
        "base_model": str(base_model_dir.resolve()),
        "init_adapter": str(init_adapter.resolve()) if init_adapter else None,
        "dataset": dataset,
        "replay_prompts_sha256": _replay_sha256(recipe),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "versions": _library_versions(),
        "metrics": metrics,
        "log_history": trainer.state.log_history,
    }
    with atomic_directory(output_dir) as tmp:
        _write_adapter(trainer.model, tmp, base_model_dir)
        atomic_write_json(tmp / RECORD_FILE, record)
    return metrics


def _replay_sha256(recipe: Recipe) -> str | None:
    if not recipe.replay_prompts:
        return None
    from ct_llm.config import resolve_resource

    return sha256_file(resolve_resource(recipe.replay_prompts))


def _library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }
