"""`ct-llm train --resume` reads the Trainer's pickles (`optimizer.pt`, `scheduler.pt`,
`rng_state.pth`): one planted in the checkpoint is refused, not run.

transformers 5.x loads each with `torch.load(..., weights_only=True)`; if a later version (or a
change in ct-llm's resume) loaded them any other way, the planted pickle would create its flag
folder and these tests would fail. The real runner on a tiny random Llama resumes from a real
checkpoint; a control shows that the same checkpoint, untouched, resumes fine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dataset_files import tiny_dpo_dataset
from tiny_models import make_tiny_llama

from ct_llm.train.checkpoints import MARKER, UnsafeCheckpointError
from ct_llm.train.recipe import Recipe

pytestmark = pytest.mark.integration

RECIPE = Recipe.model_validate(
    {
        "method": "dpo",
        "max_steps": 2,
        "save_steps": 1,
        "per_device_train_batch_size": 2,
        "max_length": 64,
        "lora": {"r": 4, "alpha": 8},
        "thumbs_up_anchors": False,
        "seed": 3,
    }
)


class Planted:
    """Pickled as "call os.mkdir(flag)": loading it with a full unpickler creates `flag`."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.flag),))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> dict[str, Path]:
    """A model, a dataset and a job folder whose last complete checkpoint is step 1 of 2."""
    from ct_llm.train.runner import train_adapter

    root = tmp_path_factory.mktemp("resume")
    model = make_tiny_llama(root / "model", base_model_dir)
    data = tiny_dpo_dataset(root / "data")
    train_adapter(RECIPE, model, data, root / "first", checkpoint_dir=root / "job")
    checkpoints = root / "job" / "trainer"
    shutil.rmtree(checkpoints / "checkpoint-2")  # as if killed during step 2
    assert (checkpoints / "checkpoint-1" / MARKER).is_file()
    return {"model": model, "data": data, "job": root / "job"}


def _resume(trained: dict[str, Path], job: Path, out: Path) -> dict:
    from ct_llm.train.runner import train_adapter

    return train_adapter(
        RECIPE, trained["model"], trained["data"], out, checkpoint_dir=job, resume=True
    )


@pytest.mark.parametrize("name", ["rng_state.pth", "optimizer.pt", "scheduler.pt"])
def test_a_planted_pickle_in_a_checkpoint_is_refused_not_run(
    trained: dict[str, Path], tmp_path: Path, name: str
) -> None:
    import torch

    job = shutil.copytree(trained["job"], tmp_path / "job")
    target = job / "trainer" / "checkpoint-1" / name
    assert target.is_file()  # the Trainer wrote it: resuming reads it
    flag = tmp_path / "payload-ran"
    torch.save(Planted(flag), target)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint-1 holds a pickle .* refused"):
        _resume(trained, job, tmp_path / "out")
    assert not flag.exists()
    assert not (tmp_path / "out").exists()


def test_the_untouched_checkpoint_resumes(trained: dict[str, Path], tmp_path: Path) -> None:
    # The control: the refusal above is about the planted file, not resuming as such.
    job = shutil.copytree(trained["job"], tmp_path / "job")
    metrics = _resume(trained, job, tmp_path / "out")
    assert metrics["resumed_from_step"] == 1 and metrics["steps"] == 2


def test_the_planted_pickle_runs_when_loaded_without_weights_only(tmp_path: Path) -> None:
    # The payload is live, so the tests above would notice an unsafe load.
    import torch

    flag = tmp_path / "payload-ran"
    torch.save(Planted(flag), tmp_path / "state.pt")
    torch.load(tmp_path / "state.pt", weights_only=False)
    assert flag.is_dir()
