"""KTO on unpaired thumbs (`kto/train.parquet`: prompt, completion, label).

KTO weighs the loss of desirable and undesirable examples; TRL advises keeping
desirable_weight * n_desirable / (undesirable_weight * n_undesirable) within [1, 4/3]. Unless
the recipe sets the weights, the smaller side is up-weighted so the ratio is exactly 1: a version
with 4x more thumbs-down than thumbs-up does not teach mostly "avoid".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ct_llm.errors import NoDataError
from ct_llm.train.common import common_args
from ct_llm.train.method import Built, Job


def balance_weights(n_desirable: int, n_undesirable: int) -> tuple[float, float]:
    """(desirable_weight, undesirable_weight) that make the weighted sides equal."""
    if n_desirable == 0 or n_undesirable == 0:
        return 1.0, 1.0
    if n_desirable < n_undesirable:
        return n_undesirable / n_desirable, 1.0
    return 1.0, n_desirable / n_undesirable


def check_rows(rows: list[dict[str, Any]], dataset_dir: Path) -> tuple[int, int]:
    """(thumbs up, thumbs down); KTO learns from the contrast, so both must be there."""
    n_up = sum(1 for r in rows if r["label"])
    n_down = len(rows) - n_up
    if n_up == 0 or n_down == 0:
        raise NoDataError(
            f"KTO needs both thumbs up and thumbs down; {dataset_dir} has {n_up} up and "
            f"{n_down} down (use method: sft for liked answers only)"
        )
    return n_up, n_down


def build(job: Job) -> Built:
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    n_up, n_down = check_rows(job.rows, job.dataset_dir)
    auto = balance_weights(n_up, n_down)
    recipe = job.recipe
    desirable = recipe.desirable_weight if recipe.desirable_weight is not None else auto[0]
    undesirable = recipe.undesirable_weight if recipe.undesirable_weight is not None else auto[1]
    args = KTOConfig(
        **common_args(recipe, job.scratch, KTOConfig),
        beta=recipe.beta,
        desirable_weight=desirable,
        undesirable_weight=undesirable,
    )
    trainer = KTOTrainer(
        model=job.model,
        ref_model=None,
        args=args,
        train_dataset=Dataset.from_list(job.rows),
        processing_class=job.tokenizer,
        peft_config=job.peft_config,
        callbacks=job.callbacks,
    )
    info = {
        "desirable": n_up,
        "undesirable": n_down,
        "desirable_weight": desirable,
        "undesirable_weight": undesirable,
    }
    return Built(trainer, info)
