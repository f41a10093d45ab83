"""SFT on curated good answers (`sft/train.parquet`: prompt, completion): edited answers,
top-rated answers and golden examples. The loss is on the completion only, so the adapter learns
to answer, not to write questions."""

from __future__ import annotations

from ct_llm.train.common import common_args
from ct_llm.train.method import Built, Job


def build(job: Job) -> Built:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**common_args(job.recipe, job.scratch, SFTConfig), completion_only_loss=True)
    trainer = SFTTrainer(
        model=job.model,
        args=args,
        train_dataset=Dataset.from_list(job.rows),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
    )
    return Built(trainer, {})
