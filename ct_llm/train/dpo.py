"""DPO on preference pairs (`dpo/train.parquet`), with anchors for the SFT term.

The reference policy is the model the adapter starts from (no second model in memory): the base
model, or on a warm start the production model. Two engines (recipe `dpo_engine`):
`shared_prompt` (default, `shared_prompt_dpo.py`) computes the reference log-probabilities once;
`trl` is TRL's DPOTrainer, which runs the reference (adapter disabled, or a frozen copy of the
starting adapter) on every batch.
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
    if recipe.sft_weight == 0 and recipe.anchor_loss == "nll":
        return []  # without the SFT term NLL anchors would get no gradient at all
    from ct_llm.train.replay import replay_anchors, thumbs_up_anchors

    found = thumbs_up_anchors(dataset_dir) if recipe.thumbs_up_anchors else []
    if recipe.replay_prompts:
        found += replay_anchors(
            model, tokenizer, recipe.replay_prompts, recipe.replay_max_new_tokens
        )
    return found


def build(job: Job) -> Built:
    extra = anchors(job.recipe, job.model, job.tokenizer, job.dataset_dir)
    if job.recipe.anchor_negative_weight > 0:
        from ct_llm.train.replay import with_foreign_answers

        extra = with_foreign_answers(extra, job.rows, job.recipe.seed)
    if job.recipe.dpo_engine == "shared_prompt":
        return build_shared_prompt(job, job.rows + extra, len(extra))
    return build_trl(job, job.rows + extra, len(extra))


def build_trl(job: Job, rows: list[dict[str, Any]], n_anchors: int) -> Built:
    from datasets import Dataset
    from trl import DPOTrainer

    trainer = DPOTrainer(
        model=job.model,
        ref_model=None,
        args=dpo_args(job.recipe, job.scratch),
        train_dataset=Dataset.from_list(rows),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
    )
    return Built(trainer, {"train_pairs": len(job.rows), "anchors": n_anchors})


def build_shared_prompt(job: Job, rows: list[dict[str, Any]], n_anchors: int) -> Built:
    import time

    from transformers import TrainingArguments

    from ct_llm.train import shared_prompt_dpo as sp
    from ct_llm.train.preference_loss import LossConfig

    recipe = job.recipe
    pairs = sp.tokenize_pairs(job.tokenizer, rows, recipe.max_length)
    if not pairs:
        from ct_llm.errors import NoDataError

        raise NoDataError(
            f"every pair's prompt fills max_length={recipe.max_length} tokens; raise max_length"
        )
    model = job.model
    if job.peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, job.peft_config)
    disable_dropout(model)
    args = common_args(recipe, job.scratch, TrainingArguments)
    del args["max_length"]  # a TRL setting; truncation happened in tokenize_pairs
    args["remove_unused_columns"] = False  # the collator reads the items whole
    dataset = sp.PairDataset(pairs, [])
    collator = sp.PairCollator(job.tokenizer.pad_token_id)
    trainer = sp.make_trainer_class()(
        model=model,
        args=TrainingArguments(**args),
        train_dataset=dataset,
        data_collator=collator,
        callbacks=job.callbacks,
        loss_config=LossConfig(
            loss_type=recipe.loss_type,
            beta=recipe.beta,
            label_smoothing=recipe.label_smoothing,
            sft_weight=recipe.sft_weight,
            anchor_loss=recipe.anchor_loss,
            anchor_weight=recipe.anchor_weight,
            anchor_negative_weight=recipe.anchor_negative_weight,
        ),
    )
    if recipe.gradient_checkpointing:
        model.enable_input_require_grads()  # PEFT + checkpointing: inputs must carry grads
    # After the Trainer placed the model on its device; before any weight moves.
    started = time.monotonic()
    dataset.ref = sp.reference_logps_sharded(
        trainer.model,
        pairs,
        collator.pad_id,
        recipe.reference_batch_size,
        trainer.args.device,
        topk=recipe.anchor_topk if recipe.anchor_loss == "kl" else 0,
    )
    info = {
        "train_pairs": len(job.rows),
        "anchors": n_anchors,
        "dropped_too_long": len(rows) - len(pairs),
        "reference_logps_s": round(time.monotonic() - started, 2),
    }
    return Built(trainer, info)


def disable_dropout(model: Any) -> None:
    """As TRL does for DPO: the reference log-probs and the policy's must come from the same
    deterministic function, or dropout noise alone moves the loss."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
