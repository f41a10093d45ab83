"""`train_adapter`: setup -> build (the method's TRL trainer) -> fit -> save.

Input: a curated dataset version (`ct_llm.curate.layout`). Output: one adapter folder written
atomically (`adapter_model.safetensors`, `adapter_config.json`, `manifest.json`). The method
is the recipe's, or with `method: auto` the strongest signal the version holds (DPO pairs, else
KTO examples, else SFT examples).
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ct_llm.atomic import apply_umask, atomic_directory, atomic_write_json
from ct_llm.errors import ConfigError
from ct_llm.train import common
from ct_llm.train.checkpoints import last_complete, mark_complete_callback, unsafe_checkpoint
from ct_llm.train.data import choose_method, dataset_info, load_examples
from ct_llm.train.manifest import (
    MANIFEST_FILE,
    adapter_files_sha256,
    config_sha256,
    model_sha256,
)
from ct_llm.train.method import Job
from ct_llm.train.recipe import Recipe, recipe_to_dict
from ct_llm.train.throughput import ThroughputCallback, translate_oom

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


@contextlib.contextmanager
def _scratch(checkpoint_dir: Path | None) -> Iterator[str]:
    """The trainer's output_dir: the job's checkpoint folder, else a temporary one."""
    if checkpoint_dir is not None:
        folder = checkpoint_dir / "trainer"
        folder.mkdir(parents=True, exist_ok=True)
        yield str(folder)
        return
    with tempfile.TemporaryDirectory(prefix="ct-llm-trl-") as tmp:
        yield tmp


def _throughput_callback(trainer: Any, recipe: Recipe, method: str) -> ThroughputCallback:
    """tokens/s (and MFU on a known GPU) in every log; it must run before the callback that
    forwards logs, so it goes first."""
    count = None
    if hasattr(trainer, "tokens_seen"):  # the shared-prompt engine counts its unpadded tokens

        def count() -> float:
            return trainer.tokens_seen * trainer.args.world_size

    # TRL's DPO (and KTO) run the reference forward on every batch: that work counts as FLOPs.
    per_batch_reference = method == "kto" or (method == "dpo" and recipe.dpo_engine == "trl")
    callback = ThroughputCallback(
        trainer.model, recipe.max_length, count, reference_forward=per_batch_reference
    )
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback


def train_adapter(
    recipe: Recipe,
    base_model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    *,
    init_adapter: Path | None = None,
    on_log: common.OnLog | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    lineage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on `dataset_dir` with the recipe's method; write it to `output_dir`.

    With `checkpoint_dir`, a resumable checkpoint is written there every `recipe.save_steps`
    steps, and `resume` continues from the last complete one (`checkpoints.py`); without it the
    trainer's scratch space is a temporary folder and nothing is checkpointed. `lineage`
    (tenant, dataset version, parent adapter) goes into the adapter's manifest.json.

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
    if checkpoint_dir is None:
        recipe = recipe.model_copy(update={"save_steps": 0})
    with _scratch(checkpoint_dir) as scratch:
        built = module.build(
            Job(
                recipe=recipe,
                rows=rows,
                model=model,
                tokenizer=tokenizer,
                dataset_dir=dataset_dir,
                scratch=Path(scratch),
                peft_config=peft_config,
                callbacks=[common.log_callback(on_log), mark_complete_callback()],
            )
        )
        trainer = built.trainer
        from transformers import PrinterCallback

        # Logs reach the caller through `on_log` only: transformers' printer would write them to
        # stdout, where `--json` output goes.
        trainer.remove_callback(PrinterCallback)
        throughput = _throughput_callback(trainer, recipe, method)
        # fit
        start_at = last_complete(Path(scratch), prune=True) if resume else None
        if resume and on_log is not None:
            where = f"from {start_at.name}" if start_at else "from the start (no checkpoint)"
            on_log({"event": f"resuming {where}"})
        try:
            trainer.train(resume_from_checkpoint=str(start_at) if start_at else None)
        except pickle.UnpicklingError as e:
            # torch.load(weights_only=True) refused a pickle of the checkpoint (checkpoints.py)
            if start_at is None:
                raise
            raise unsafe_checkpoint(start_at, e) from e
        except (RuntimeError, MemoryError) as e:
            clear = translate_oom(e, recipe)
            if clear is None:
                raise
            raise clear from e
    wall = time.monotonic() - started
    metrics = summarise(trainer.state.log_history, trainer.state.global_step, wall)
    metrics.update({"method": method, "train_examples": len(rows), **built.info})
    metrics.update(throughput.summary())
    metrics["processes"] = trainer.args.world_size
    if resume:
        metrics["resumed_from_step"] = int(start_at.name.split("-")[1]) if start_at else 0
    if torch.cuda.is_available():
        metrics["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # save
    settings = recipe_to_dict(recipe)
    record = {
        "version": output_dir.name,
        **(lineage or {}),
        "method": method,
        "recipe": settings,
        "recipe_sha256": config_sha256(settings),
        "seed": recipe.seed,
        "git_commit": common.git_commit(),
        "base_model": {
            "path": str(base_model_dir.resolve()),
            "sha256": model_sha256(base_model_dir),
        },
        "init_adapter": str(init_adapter.resolve()) if init_adapter else None,
        "dataset": dataset,
        "replay_prompts_sha256": common.replay_sha256(recipe),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "versions": common.library_versions(),
        "metrics": metrics,
        "log_history": trainer.state.log_history,
    }
    _save(trainer, output_dir, base_model_dir, record)
    return metrics


def _save(trainer: Any, output_dir: Path, base_model_dir: Path, record: dict[str, Any]) -> None:
    """Write the adapter folder. Data-parallel workers: the first one writes. With a sharded
    model (FSDP, ZeRO-3) every worker must take part in gathering the full LoRA weights, which
    the Trainer's own save does."""
    main = trainer.args.process_index == 0
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        if trainer.is_fsdp_enabled:
            trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        gathered = output_dir.parent / f".{output_dir.name}.gathered"
        trainer.save_model(str(gathered))  # collective
        if main:
            with atomic_directory(output_dir) as tmp:
                for name in ("adapter_model.safetensors", "adapter_config.json"):
                    (gathered / name).replace(tmp / name)
                common.point_at_base(tmp, base_model_dir)
                _finish(tmp, record)
            shutil.rmtree(gathered, ignore_errors=True)
        return
    if main:
        with atomic_directory(output_dir) as tmp:
            common.write_adapter(trainer.model, tmp, base_model_dir)
            _finish(tmp, record)


def _finish(tmp: Path, record: dict[str, Any]) -> None:
    """The manifest, then modes by the umask (the adapter's weights were written 0600, which a
    vLLM server running as another user cannot read): the last steps before the publish."""
    record["files"] = adapter_files_sha256(tmp)
    atomic_write_json(tmp / MANIFEST_FILE, record)
    apply_umask(tmp)
