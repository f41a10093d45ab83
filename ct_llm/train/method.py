"""The contract between the runner and a training method: a method module has
`build(job: Job) -> Built` that returns a ready TRL trainer; the runner loads, fits and saves.
A module may also have `check_rows(rows, dataset_dir)`, run before the model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ct_llm.train.recipe import Recipe


@dataclass
class Job:
    """Everything a method needs to build its trainer."""

    recipe: Recipe
    rows: list[dict[str, Any]]
    model: Any
    tokenizer: Any
    dataset_dir: Path
    scratch: Path
    """TRL's output_dir: scratch space, never part of the artifact."""
    peft_config: Any
    """None on a warm start (the model already carries the adapter being trained)."""
    callbacks: list[Any]


@dataclass
class Built:
    trainer: Any
    info: dict[str, Any] = field(default_factory=dict)
    """Method-specific facts for the train record (pairs, anchors, KTO weights, ...)."""
