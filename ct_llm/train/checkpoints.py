"""Resumable training: checkpoints that count only once complete, and the record of a training
job that was interrupted.

transformers writes `checkpoint-<step>/` file by file, so a `kill -9` (or a preempted node)
mid-save leaves a folder that looks like a checkpoint and is not one. After the Trainer has
written everything it `on_save`s, and only then is a marker written (atomically); resuming picks
the newest checkpoint with the marker and deletes newer folders without one.

A training job keeps its state in `<workspace>/checkpoints/<version>/`: `job.json` (what it is
training: version, dataset, resolved recipe, warm start) and `trainer/` (the checkpoints). The
folder is removed once the adapter is written; one that is still there is an interrupted job.

Resuming reads pickles: the Trainer's `optimizer.pt`, `scheduler.pt` and `rng_state.pth` (the
weights are safetensors). transformers (5.x) loads each with `torch.load(..., weights_only=True)`,
whose unpickler builds tensors and plain containers only and refuses any other callable, so a
planted pickle is refused, not run; `UnsafeCheckpointError` says so in words
(tests/security/test_checkpoint_pickles.py fails if that ever changes). ct-llm's own files here
are JSON.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_write_json, fsync_tree
from ct_llm.errors import CtLlmError

MARKER = "ct-llm-complete.json"
JOB_FILE = "job.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


class UnsafeCheckpointError(CtLlmError):
    """A checkpoint holds a pickle that is more than tensors: it was refused, not loaded."""


def unsafe_checkpoint(checkpoint: Path, error: Exception) -> UnsafeCheckpointError:
    reason = str(error).strip().splitlines()
    return UnsafeCheckpointError(
        f"checkpoint {checkpoint} holds a pickle that is not plain tensors and was refused, not "
        f"loaded ({reason[0] if reason else type(error).__name__}); this training did not write "
        "it: `ct-llm train --restart` discards the interrupted job and starts anew"
    )


def mark_complete_callback() -> Any:
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                fsync_tree(folder)  # the marker must not reach the disk before the files
                atomic_write_json(folder / MARKER, {"step": state.global_step})

    return MarkComplete()


def _steps(trainer_dir: Path) -> list[tuple[int, Path]]:
    if not trainer_dir.is_dir():
        return []
    found = []
    for child in trainer_dir.iterdir():
        m = _STEP.match(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def last_complete(trainer_dir: Path, *, prune: bool = False) -> Path | None:
    """The newest complete checkpoint; with `prune`, incomplete ones are deleted (a resumed
    run would otherwise save into, or rotate around, a half-written folder)."""
    best = None
    for _step, folder in _steps(trainer_dir):
        if (folder / MARKER).is_file():
            best = folder
        elif prune:
            shutil.rmtree(folder, ignore_errors=True)
    return best


def completed_step(trainer_dir: Path) -> int:
    last = last_complete(trainer_dir)
    return int(_STEP.match(last.name).group(1)) if last else 0  # type: ignore[union-attr]


@dataclass
class TrainingJob:
    """What an interrupted training was doing, enough to continue it exactly."""

    tenant: str
    version: str
    number: int
    dataset_version: str
    dataset_path: str
    recipe_file: str
    overrides: list[str]
    recipe: dict[str, Any]
    """The resolved recipe: a resumed job trains with what it started with, even if the file
    changed since."""
    parent: str | None
    init_adapter: str | None

    def lineage(self) -> dict[str, Any]:
        """What the adapter's manifest records about where it comes from."""
        return {
            "tenant": self.tenant,
            "dataset_version": self.dataset_version,
            "parent_version": self.parent,
            "warm_start": self.init_adapter is not None,
            "recipe_file": self.recipe_file,
            "overrides": self.overrides,
        }

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / JOB_FILE, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> TrainingJob:
        return cls(**json.loads((folder / JOB_FILE).read_text()))


def interrupted_jobs(checkpoints_dir: Path, tenant: str) -> list[tuple[TrainingJob, Path]]:
    """This tenant's training jobs that left state behind, oldest version first (by number:
    `-v10` sorts after `-v9`)."""
    found = []
    if not checkpoints_dir.is_dir():
        return found
    for folder in sorted(checkpoints_dir.iterdir()):
        if not (folder / JOB_FILE).is_file():
            continue
        try:
            job = TrainingJob.load(folder)
        except (ValueError, TypeError, OSError):
            continue  # a job file from another ct-llm version: not ours to resume
        if job.tenant == tenant:
            found.append((job, folder))
    return sorted(found, key=lambda jf: jf[0].number)
