"""DPO on preference pairs (`dpo/train.parquet`), with anchors for the SFT term.

The reference policy is the model the adapter starts from (no second model in memory): the base
model with the adapter disabled, or, on a warm start, a frozen copy of the starting adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ct_llm.train.common import common_args
from ct_llm.train.method import Built, Job
from ct_llm.train.recipe import Recipe


def dpo_args(recipe: Recipe, scratch: Path) -> Any:
    from trl import DPOConfig

    losses, weights = [recipe.loss_type], [1.0]
    if recipe.sft_weight > 0:
        losses.append("sft")
        weights.append(recipe.sft_weight)
    return DPOConfig(
        **common_args(recipe, scratch, DPOConfig),
        beta=recipe.beta,
        loss_type=losses,
        loss_weights=weights,
    )


def anchors(recipe: Recipe, model: Any, tokenizer: Any, dataset_dir: Path) -> list[dict[str, Any]]:
    if recipe.sft_weight == 0:
        return []  # without the SFT term anchors would get no gradient at all
    from ct_llm.train.replay import replay_anchors, thumbs_up_anchors

    found = thumbs_up_anchors(dataset_dir) if recipe.thumbs_up_anchors else []
    if recipe.replay_prompts:
        found += replay_anchors(
            model, tokenizer, recipe.replay_prompts, recipe.replay_max_new_tokens
        )
    return found


def build(job: Job) -> Built:
    from datasets import Dataset
    from trl import DPOTrainer

    extra = anchors(job.recipe, job.model, job.tokenizer, job.dataset_dir)
    trainer = DPOTrainer(
        model=job.model,
        ref_model=None,
        args=dpo_args(job.recipe, job.scratch),
        train_dataset=Dataset.from_list(job.rows + extra),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
    )
    return Built(trainer, {"train_pairs": len(job.rows), "anchors": len(extra)})
