"""SFT on curated good answers (`sft/train.parquet`: prompt, completion): edited answers,
top-rated answers and golden examples. The loss is on the completion only, so the adapter learns
to answer, not to write questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ct_llm.train.common import common_args
from ct_llm.train.method import Built
from ct_llm.train.recipe import Recipe


def build(
    recipe: Recipe,
    rows: list[dict[str, Any]],
    model: Any,
    tokenizer: Any,
    dataset_dir: Path,
    scratch: Path,
    peft_config: Any,
    callbacks: list[Any],
) -> Built:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**common_args(recipe, scratch, SFTConfig), completion_only_loss=True)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    return Built(trainer, {})
