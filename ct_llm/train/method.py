"""The contract between the runner and a training method: a method module has a
`build(recipe, rows, model, tokenizer, dataset_dir, scratch, peft_config, callbacks) -> Built`
that returns a ready TRL trainer; the runner loads, fits and saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Built:
    trainer: Any
    info: dict[str, Any] = field(default_factory=dict)
    """Method-specific facts for the train record (pairs, anchors, KTO weights, ...)."""
