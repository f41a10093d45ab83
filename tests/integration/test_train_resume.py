"""`kill -9` during `ct-llm train`, then `ct-llm train --resume`: training continues from the last
complete checkpoint, and its loss curve is the one an uninterrupted run traces (the real CLI,
real checkpoints, a real SIGKILL; a small random Llama so steps are quick but not instant)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_models import FEEDBACK_TENANT, curated_workspace

from ct_llm.curate.dataset import latest_dataset
from ct_llm.store.db import session_scope
from ct_llm.train.checkpoints import MARKER, interrupted_jobs
from ct_llm.train.recipe import load_recipe

pytestmark = pytest.mark.integration

TENANT = FEEDBACK_TENANT
RECIPE = {
    "method": "dpo",
    "max_steps": 30,
    "save_steps": 3,
    "per_device_train_batch_size": 2,
    "max_length": 128,
    "learning_rate": 5e-3,
    "lora": {"r": 4, "alpha": 8},
    "thumbs_up_anchors": False,
    "logging_steps": 1,
    "seed": 3,
}


def _cli(ws: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ct_llm.cli", *args, "--workspace", str(ws), "--tenant", TENANT]


def _wait_for_marker(trainer_dir: Path, step: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (trainer_dir / f"checkpoint-{step}" / MARKER).exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc {proc.returncode}) before step {step}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no complete checkpoint-{step} after {timeout} s")
        time.sleep(0.05)


def test_kill_9_then_resume_continues_the_loss_curve(tmp_path: Path, base_model_dir: Path) -> None:
    # Steps of a bigger tiny model take long enough to kill the run between two checkpoints.
    ws = curated_workspace(tmp_path / "ws", base_model_dir, hidden=128, layers=4)
    tenant = TENANT
    with session_scope(ws.database_url) as session:
        dataset_dir = Path(latest_dataset(session, tenant).path)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))

    proc = subprocess.Popen(
        _cli(ws.root, "train", "--recipe", str(recipe_file)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        jobs = []
        deadline = time.monotonic() + 120
        while not jobs and time.monotonic() < deadline:
            jobs = interrupted_jobs(ws.checkpoints_dir, tenant)
            time.sleep(0.05)
        job, folder = jobs[0]
        _wait_for_marker(folder / "trainer", 6, proc, timeout=300)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (ws.adapters_dir / job.version).exists()

    # A plain `train` must not silently throw the interrupted work away.
    plain = subprocess.run(_cli(ws.root, "train"), capture_output=True, text=True)
    assert plain.returncode != 0 and "--resume" in plain.stderr

    resumed = subprocess.run(
        _cli(ws.root, "train", "--resume", "--json"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out = json.loads(resumed.stdout)
    assert out["version"] == job.version and out["resumed"] is True
    assert 6 <= out["metrics"]["resumed_from_step"] < 30
    assert not folder.exists()  # the job is over: its checkpoints are gone

    record = json.loads((ws.adapters_dir / job.version / "manifest.json").read_text())
    steps = [e["step"] for e in record["log_history"] if "loss" in e]
    assert steps == list(range(1, 31))

    # The same training without interruption traces the same curve.
    from ct_llm.train.runner import train_adapter

    straight = train_adapter(
        load_recipe(recipe_file), ws.require_base_model(), dataset_dir, tmp_path / "straight"
    )
    resumed_curve = [e["loss"] for e in record["log_history"] if "loss" in e]
    assert resumed_curve == pytest.approx(straight["loss_curve"], rel=1e-3)
    assert len({round(x, 4) for x in resumed_curve}) > 10  # a moving curve, not a constant


def test_resume_without_an_interrupted_job_says_so(empty_workspace) -> None:
    from ct_llm.errors import NoDataError
    from ct_llm.train.candidate import train_candidate

    with pytest.raises(NoDataError, match="no interrupted training"):
        train_candidate(empty_workspace, TENANT, resume=True)
