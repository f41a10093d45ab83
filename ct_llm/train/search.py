"""Hyperparameter search for a DPO candidate (`search:` in a recipe).

Each trial trains a complete candidate with sampled settings (learning rate, beta, epochs) and is
scored on the dataset version's held-out pairs (`dpo/test.parquet`): the share of pairs whose
implicit reward margin, (log pi - log ref)(chosen) - (log pi - log ref)(rejected), is positive,
ties broken by the mean margin. The reference is the model the candidate starts from, as in
training. The best trial becomes the candidate; every trial is recorded in its manifest.

A hand-rolled random search rather than a library: a handful of trials with a fixed first one
needs no sampler state, and the trials' record is ours to keep in the manifest either way.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_write_json
from ct_llm.errors import NoDataError
from ct_llm.train.recipe import Recipe, SearchSettings


def sample_trials(recipe: Recipe, settings: SearchSettings) -> list[dict[str, Any]]:
    """The settings each trial overrides, the first being the recipe's own (pure)."""
    rng = random.Random(settings.seed)
    trials: list[dict[str, Any]] = [{}]
    for _ in range(settings.trials - 1):
        trial: dict[str, Any] = {}
        for name in ("learning_rate", "beta"):
            bounds = getattr(settings, name)
            if bounds is not None:
                lo, hi = math.log(bounds[0]), math.log(bounds[1])
                trial[name] = float(f"{math.exp(rng.uniform(lo, hi)):.3g}")
        if settings.num_epochs and recipe.max_steps == -1:
            trial["num_epochs"] = rng.choice(settings.num_epochs)
        trials.append(trial)
    return trials


def best_trial(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest held-out accuracy, then highest mean margin; the earlier trial on a full tie."""
    return max(results, key=lambda r: (r["heldout_accuracy"], r["heldout_margin"], -r["trial"]))


def heldout_scorer(
    base_model_dir: Path, dataset_dir: Path, init_adapter: Path | None, max_length: int
) -> Callable[[Path], tuple[float, float]]:
    """A function adapter_dir -> (accuracy, mean margin) on the held-out pairs, with the
    reference log-probs computed once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ct_llm.train.data import read_split
    from ct_llm.train.shared_prompt_dpo import reference_logps, tokenize_pairs

    rows = read_split(dataset_dir, "dpo", "test") if _has_test(dataset_dir) else []
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    pairs = tokenize_pairs(
        tokenizer, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows], max_length
    )
    if not pairs:
        raise NoDataError(
            f"the search scores trials on held-out pairs and {dataset_dir} has none "
            "(dpo/test.parquet); collect more feedback or train without `search`"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def model_with(adapter: Path | None) -> Any:
        model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=dtype).to(device)
        if adapter is None:
            return model
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter))

    ref = reference_logps(model_with(init_adapter), pairs, pad, 16, device)

    def score(adapter_dir: Path) -> tuple[float, float]:
        policy = reference_logps(model_with(adapter_dir), pairs, pad, 16, device)
        margins = [
            (p.chosen - r.chosen) - (p.rejected - r.rejected)
            for p, r in zip(policy, ref, strict=True)
        ]
        accuracy = sum(m > 0 for m in margins) / len(margins)
        return round(accuracy, 4), round(sum(margins) / len(margins), 4)

    return score


def _has_test(dataset_dir: Path) -> bool:
    from ct_llm.curate.layout import split_path

    return split_path(dataset_dir, "dpo", "test").is_file()


def search_adapter(
    recipe: Recipe,
    base_model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    *,
    init_adapter: Path | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    lineage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the recipe's search; the best trial's adapter is moved to `output_dir` and its
    metrics returned, with the search's record."""
    from ct_llm.train.manifest import MANIFEST_FILE, read_manifest
    from ct_llm.train.runner import train_adapter

    settings = recipe.search
    assert settings is not None
    score = heldout_scorer(base_model_dir, dataset_dir, init_adapter, recipe.max_length)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # Named after the version, so a killed search's leftovers are found (ct_llm/leftovers.py).
    tmp_prefix = f".{output_dir.name}.search-"
    with tempfile.TemporaryDirectory(prefix=tmp_prefix, dir=output_dir.parent) as tmp:
        for i, overrides in enumerate(sample_trials(recipe, settings), 1):
            if results and time.monotonic() - started > settings.minutes * 60:
                break  # the budget: no new trial, the results so far stand
            if on_log is not None:
                on_log({"event": f"search trial {i}/{settings.trials}: {overrides or 'recipe'}"})
            trial_recipe = recipe.model_copy(update=overrides)
            out = Path(tmp) / f"trial-{i}"
            metrics = train_adapter(
                trial_recipe,
                base_model_dir,
                dataset_dir,
                out,
                init_adapter=init_adapter,
                on_log=on_log,
                lineage=lineage,
            )
            accuracy, margin = score(out)
            results.append(
                {
                    "trial": i,
                    "overrides": overrides,
                    "heldout_accuracy": accuracy,
                    "heldout_margin": margin,
                    "final_loss": metrics.get("final_loss"),
                    "wall_time_s": metrics.get("wall_time_s"),
                }
            )
            if on_log is not None:
                on_log({"event": f"  held-out accuracy {accuracy}, mean margin {margin}"})
        best = best_trial(results)
        chosen = Path(tmp) / f"trial-{best['trial']}"
        record = {
            "settings": settings.model_dump(mode="json"),
            "trials": results,
            "best_trial": best["trial"],
            "wall_time_s": round(time.monotonic() - started, 2),
        }
        manifest = read_manifest(chosen) or {}
        manifest["version"] = output_dir.name  # the trial's folder name until now
        manifest["search"] = record
        atomic_write_json(chosen / MANIFEST_FILE, manifest)
        chosen.rename(output_dir)  # same filesystem: the adapter appears whole or not at all
    return {**manifest["metrics"], "search": record}
