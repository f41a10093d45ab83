"""`ct-llm bench train`: ct-llm's DPO step vs stock TRL, side by side in one run.

Both engines train a fresh LoRA adapter on the same base model (SmolLM2-135M-Instruct by
default), the same synthetic support-chatbot pairs (`pair_data.py`), the same recipe, steps and
seed, through the same `train_adapter` entry point; only `dpo_engine` differs:

- baseline `trl`: TRL's `DPOTrainer`, `ref_model=None` (the reference is the model with the
  adapter disabled, run on every batch), default padding;
- ours `shared_prompt`: reference log-probs computed once, shared-prompt rows
  (`train/shared_prompt_dpo.py`).

Each engine runs in a fresh interpreter, so its peak RSS is its own. Pairs/s counts the pairs
trained over the training time, which for ours includes computing the reference log-probs (model
loading and tokenization are excluded on both sides and reported apart). The loss curves are
compared step by step: the same math on the same batches must give the same losses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGETS = {"pairs_per_s_ratio": 1.5, "final_loss_rel_diff": 0.02}
ENGINES = ("trl", "shared_prompt")


def _recipe_overrides(steps: int, batch: int, engine: str) -> dict[str, Any]:
    return {
        "method": "dpo",
        "dpo_engine": engine,
        "max_steps": steps,
        "per_device_train_batch_size": batch,
        "learning_rate": 5e-5,
        "lr_scheduler": "linear",
        "warmup_steps": 0,
        "max_length": 512,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "beta": 0.1,
        "sft_weight": 0.0,
        "thumbs_up_anchors": False,
        "logging_steps": 1,
        "save_steps": 0,
        "seed": 0,
    }


def _worker(engine: str, base: Path, dataset: Path, steps: int, batch: int) -> dict[str, Any]:
    """One engine's run, in this (fresh) process."""
    from ct_llm.train.recipe import Recipe
    from ct_llm.train.runner import train_adapter

    recipe = Recipe.model_validate(_recipe_overrides(steps, batch, engine))
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-train-") as tmp:
        metrics = train_adapter(recipe, base, dataset, Path(tmp) / "adapter")
    return metrics


def _run_engine(engine: str, base: Path, dataset: Path, steps: int, batch: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "ct_llm.bench.train", engine, str(base), str(dataset)]
    proc = subprocess.run(
        [*cmd, str(steps), str(batch)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench train ({engine}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _token_stats(base: Path, dataset: Path) -> dict[str, float]:
    from transformers import AutoTokenizer

    from ct_llm.train.data import load_pairs
    from ct_llm.train.pair_layout import tokenize_pair

    tok = AutoTokenizer.from_pretrained(str(base))
    pairs = [tokenize_pair(tok, row) for row in load_pairs(dataset)]
    n = len(pairs)
    return {
        "prompt_tokens_mean": round(sum(len(p.prompt) for p in pairs) / n, 1),
        "chosen_tokens_mean": round(sum(len(p.chosen) for p in pairs) / n, 1),
        "rejected_tokens_mean": round(sum(len(p.rejected) for p in pairs) / n, 1),
    }


def _summary(engine: str, m: dict[str, Any], pairs: int) -> dict[str, Any]:
    history = m["loss_curve"]
    train_s = m["train_runtime_s"] + m.get("reference_logps_s", 0.0)
    return {
        "engine": engine,
        "pairs_per_s": round(pairs / train_s, 3),
        "train_s": round(train_s, 2),
        "reference_logps_s": m.get("reference_logps_s"),
        "wall_s": m["wall_time_s"],
        "peak_rss_mb": m["peak_rss_mb"],
        "tokens_per_s": m.get("tokens_per_s"),
        "final_loss": history[-1],
        "mean_loss": round(sum(history) / len(history), 6),
        "loss_curve": history,
    }


def _sig(x: float) -> float:
    return float(f"{x:.3g}")  # tiny differences stay visible (not rounded to 0)


def run_train_bench(
    log: Callable[[str], None], *, pairs: int = 64, batch: int = 4, base: Path | None = None
) -> dict[str, Any]:
    from ct_llm.bench.pair_data import write_dataset
    from ct_llm.train.model_import import cached_default_model

    base = base or cached_default_model()
    steps = pairs // batch  # one epoch: the least favourable case for a once-only reference pass
    results = {}
    with tempfile.TemporaryDirectory(prefix="ct-llm-bench-data-") as tmp:
        dataset = write_dataset(Path(tmp) / "ds", pairs, seed=0)
        tokens = _token_stats(base, dataset)
        log(f"{pairs} pairs, {steps} steps of {batch}; tokens per pair: {tokens}")
        for engine in ENGINES:
            log(f"training with {engine} ...")
            measured = _run_engine(engine, base, dataset, steps, batch)
            results[engine] = _summary(engine, measured, pairs)
            log(f"  {results[engine]['pairs_per_s']} pairs/s, {results[engine]['peak_rss_mb']} MB")
    ours, theirs = results["shared_prompt"], results["trl"]
    curve_diff = max(
        abs(a - b) / max(abs(b), 1e-8)
        for a, b in zip(ours["loss_curve"], theirs["loss_curve"], strict=True)
    )
    ratios = {
        "pairs_per_s_ratio": round(ours["pairs_per_s"] / theirs["pairs_per_s"], 3),
        "peak_rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
        "final_loss_rel_diff": _sig(
            abs(ours["final_loss"] - theirs["final_loss"]) / abs(theirs["final_loss"])
        ),
        "max_step_loss_rel_diff": _sig(curve_diff),
    }
    met = {
        "pairs_per_s_ratio": ratios["pairs_per_s_ratio"] >= TARGETS["pairs_per_s_ratio"],
        "peak_rss_not_higher": ratios["peak_rss_ratio"] <= 1.0,
        "final_loss_within_2pct": ratios["final_loss_rel_diff"] <= TARGETS["final_loss_rel_diff"],
    }
    import torch

    return {
        "benchmark": "train",
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "base_model": str(base),
        "pairs": pairs,
        "steps": steps,
        "batch": batch,
        **tokens,
        "baseline": theirs,
        "ours": ours,
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
    }


def _main(argv: list[str]) -> None:
    engine, base, dataset, steps, batch = argv
    metrics = _worker(engine, Path(base), Path(dataset), int(steps), int(batch))
    sys.stdout.write(json.dumps(metrics, default=str) + "\n")


if __name__ == "__main__":
    _main(sys.argv[1:])
