"""`train_adapter`: setup -> build (the method's TRL trainer) -> fit -> save.

Input: a curated dataset version (`ct_llm.curate.layout`). Output: one adapter folder written
atomically (`adapter_model.safetensors`, `adapter_config.json`, `ct-llm-train.json`). The method
is the recipe's, or with `method: auto` the strongest signal the version holds (DPO pairs, else
KTO examples, else SFT examples).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_directory, atomic_write_json
from ct_llm.errors import ConfigError
from ct_llm.train import common
from ct_llm.train.data import choose_method, dataset_info, load_examples
from ct_llm.train.method import Job
from ct_llm.train.recipe import Recipe, recipe_to_dict

# Metrics copied from the last TRL log that has them into the returned summary.
_FINAL_PREFIXES = ("rewards/", "logps/", "kl", "mean_token_accuracy")


def _method_module(method: str) -> Any:
    from ct_llm.train import dpo, kto, sft

    return {"dpo": dpo, "kto": kto, "sft": sft}[method]


def summarise(history: list[dict[str, Any]], steps: int, wall: float) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "steps": steps,
        "wall_time_s": round(wall, 2),
        "peak_rss_mb": common.peak_rss_mb(),
    }
    for entry in history:
        for key, value in entry.items():
            if key == "loss":
                metrics["final_loss"] = value
            elif key == "train_loss" or key.startswith(_FINAL_PREFIXES):
                metrics[key] = value
    metrics["loss_curve"] = [e["loss"] for e in history if "loss" in e]
    end = next((e for e in history if "train_runtime" in e), None)
    if end is not None:
        metrics["train_runtime_s"] = round(end["train_runtime"], 2)
    first = next((e for e in history if "rewards/margins" in e), None)
    if first is not None:
        metrics["first_margins"] = first["rewards/margins"]
    return metrics


def train_adapter(
    recipe: Recipe,
    base_model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    *,
    init_adapter: Path | None = None,
    on_log: common.OnLog | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on `dataset_dir` with the recipe's method; write it to `output_dir`.

    Returns the final metrics (loss, the method's reward or accuracy metrics, steps, wall time,
    peak memory). DPO anchors have a reward margin of exactly 0, so with anchors
    `rewards/accuracies` stays below 1 even when every real pair is ranked right.
    """
    # setup: everything that can fail fast fails before the model is loaded
    if output_dir.exists():
        raise ConfigError(
            f"{output_dir} already exists; adapters are immutable, pick a new version"
        )
    method = choose_method(dataset_dir) if recipe.method == "auto" else recipe.method
    rows = load_examples(dataset_dir, method)
    module = _method_module(method)
    if hasattr(module, "check_rows"):
        module.check_rows(rows, dataset_dir)  # before minutes of model loading
    dataset = dataset_info(dataset_dir)
    started = time.monotonic()

    import torch
    from transformers import AutoTokenizer

    common.quiet_libraries(on_log)
    common.seed_everything(recipe.seed)
    # build
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = common.load_model(recipe, base_model_dir, init_adapter)
    peft_config = None if init_adapter is not None else common.lora_config(recipe)
    with tempfile.TemporaryDirectory(prefix="ct-llm-trl-") as scratch:
        built = module.build(
            Job(
                recipe=recipe,
                rows=rows,
                model=model,
                tokenizer=tokenizer,
                dataset_dir=dataset_dir,
                scratch=Path(scratch),
                peft_config=peft_config,
                callbacks=[common.log_callback(on_log)],
            )
        )
        trainer = built.trainer
        from transformers import PrinterCallback

        # Logs reach the caller through `on_log` only: transformers' printer would write them to
        # stdout, where `--json` output goes.
        trainer.remove_callback(PrinterCallback)
        # fit
        trainer.train()
    wall = time.monotonic() - started
    metrics = summarise(trainer.state.log_history, trainer.state.global_step, wall)
    metrics.update({"method": method, "train_examples": len(rows), **built.info})
    if torch.cuda.is_available():
        metrics["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # save
    record = {
        "method": method,
        "recipe": recipe_to_dict(recipe),
        "seed": recipe.seed,
        "git_commit": common.git_commit(),
        "base_model": str(base_model_dir.resolve()),
        "init_adapter": str(init_adapter.resolve()) if init_adapter else None,
        "dataset": dataset,
        "replay_prompts_sha256": common.replay_sha256(recipe),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "versions": common.library_versions(),
        "metrics": metrics,
        "log_history": trainer.state.log_history,
    }
    with atomic_directory(output_dir) as tmp:
        common.write_adapter(trainer.model, tmp, base_model_dir)
        atomic_write_json(tmp / common.RECORD_FILE, record)
    return metrics
