"""What stops a training before it starts: the per-tenant lock and the serving rank limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ct_llm.errors import BusyError, ConfigError
from ct_llm.loop.locks import job_lock
from ct_llm.train.candidate import train_candidate

HOLD = """
import sys, time
from pathlib import Path
from ct_llm.loop.locks import job_lock
with job_lock(Path(sys.argv[1]), "training", "t"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_one_holder_per_tenant_and_job(tmp_path: Path) -> None:
    busy = pytest.raises(BusyError, match=r"another training of tenant 'a' is running \(pid")
    with job_lock(tmp_path, "training", "a"):
        with busy, job_lock(tmp_path, "training", "a"):
            pass
        with job_lock(tmp_path, "training", "b"), job_lock(tmp_path, "cycle", "a"):
            pass  # other tenants and other jobs are independent
    with job_lock(tmp_path, "training", "a"):
        pass  # released at the end of the block


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=f"pid {proc.pid}"), job_lock(tmp_path, "training", "t"):
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    deadline = time.monotonic() + 5
    while True:  # the kernel releases the lock with the process
        try:
            with job_lock(tmp_path, "training", "t"):
                break
        except BusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_train_refuses_a_busy_tenant_and_a_rank_the_server_refuses(empty_workspace) -> None:
    ws = empty_workspace
    with pytest.raises(ConfigError, match=r"lora.r=32 exceeds the serving limit"):
        train_candidate(ws, "default", overrides=["lora.r=32"])
    busy = pytest.raises(BusyError, match="another training of tenant 'default'")
    with job_lock(ws.locks_dir, "training", "default"), busy:
        train_candidate(ws, "default")


def test_launch_command_uses_torchrun_or_accelerate(tmp_path) -> None:
    import sys

    from ct_llm.train.launch import launch_command

    plain = launch_command(2, tmp_path / "ws", tmp_path / "job", resume=True)
    assert plain[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node"]
    assert plain[4] == "2" and plain[-1] == "--resume"
    assert plain[-4:-1] == ["ct_llm.train.launch", str(tmp_path / "ws"), str(tmp_path / "job")]
    fsdp = launch_command(
        8,
        tmp_path / "ws",
        tmp_path / "job",
        resume=False,
        accelerate_config=tmp_path / "fsdp.yaml",
        launcher_args=["--num_machines=2", "--machine_rank=0"],
    )
    assert fsdp[1:3] == ["-m", "accelerate.commands.launch"]
    assert ["--config_file", str(tmp_path / "fsdp.yaml"), "--num_processes", "8"] == fsdp[3:7]
    assert fsdp[7:9] == ["--num_machines=2", "--machine_rank=0"]
    assert "--resume" not in fsdp


def test_interrupted_training_needs_a_complete_checkpoint(empty_workspace) -> None:
    from ct_llm.train.candidate import interrupted_training
    from ct_llm.train.checkpoints import MARKER, TrainingJob, last_complete

    ws = empty_workspace
    job = TrainingJob("t", "t-a-v3", 3, "t-data-v2", "/d", "r.yaml", [], {}, None, None)
    folder = ws.checkpoints_dir / job.version
    job.save(folder)
    assert interrupted_training(ws, "t") is None  # started, nothing saved: nothing to resume
    (folder / "trainer" / "checkpoint-2").mkdir(parents=True)
    (folder / "trainer" / "checkpoint-4").mkdir()  # killed while writing this one
    assert interrupted_training(ws, "t") is None
    (folder / "trainer" / "checkpoint-2" / MARKER).write_text("{}")
    assert interrupted_training(ws, "t") == "t-a-v3"
    assert interrupted_training(ws, "other") is None
    assert last_complete(folder / "trainer", prune=True).name == "checkpoint-2"
    assert not (folder / "trainer" / "checkpoint-4").exists()  # the half-written one is gone


def test_interrupted_jobs_are_ordered_by_version_number(empty_workspace) -> None:
    from ct_llm.train.checkpoints import TrainingJob, interrupted_jobs

    ws = empty_workspace
    for n in (10, 9):
        TrainingJob("t", f"t-a-v{n}", n, "d", "/d", "r", [], {}, None, None).save(
            ws.checkpoints_dir / f"t-a-v{n}"
        )
    assert [j.number for j, _ in interrupted_jobs(ws.checkpoints_dir, "t")] == [9, 10]
