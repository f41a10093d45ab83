"""Data-parallel training: `ct-llm train --nproc N` runs the job in N processes.

The parent (`ct-llm train`) keeps what must happen once: the tenant's job lock, the job record,
registering the candidate. The N workers (`python -m ct_llm.train.launch <workspace> <job>`)
each train on their share of every batch; the first writes the adapter and its result.

Launchers are the standard ones, so scaling out needs no ct-llm cluster code:
- without an accelerate config, `torchrun` (PyTorch's launcher): gloo on CPU, NCCL on GPUs;
- with `--accelerate-config` (FSDP, DeepSpeed ZeRO-3: see recipes/accelerate/), `accelerate
  launch`, which reads the sharding settings from the file. Multi-node is the same command on
  every node with the launcher's node flags passed through (`--launcher-arg=--nnodes=2` ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ct_llm.errors import CtLlmError

RESULT_FILE = "result.json"


def launch_command(
    nproc: int,
    workspace: Path,
    job_dir: Path,
    *,
    resume: bool,
    accelerate_config: Path | None = None,
    launcher_args: list[str] | None = None,
) -> list[str]:
    """The command that starts the workers (pure: tested without running it)."""
    if nproc < 1:
        raise CtLlmError(f"--nproc must be 1 or more, not {nproc}")
    extra = list(launcher_args or [])
    if accelerate_config is not None:
        launcher = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(accelerate_config),
            "--num_processes", str(nproc),
        ]  # fmt: skip
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    worker = ["-m", "ct_llm.train.launch", str(workspace), str(job_dir)]
    return [*launcher, *extra, *worker, *(["--resume"] if resume else [])]


def run_workers(command: list[str], job_dir: Path) -> dict[str, Any]:
    """Run the workers to completion; their progress goes to this process's stderr."""
    result = job_dir / RESULT_FILE
    result.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(command, stdout=sys.stderr, env=env, check=False)
    if proc.returncode != 0 or not result.is_file():
        raise CtLlmError(
            f"distributed training failed (exit code {proc.returncode}); the workers' errors are "
            f"above. Checkpoints are kept: `ct-llm train --resume` continues from the last one"
        )
    return json.loads(result.read_text())


def _worker(argv: list[str]) -> None:
    """One data-parallel process (started by the launcher, which sets RANK / WORLD_SIZE)."""
    from ct_llm.atomic import atomic_write_json
    from ct_llm.train.checkpoints import TrainingJob
    from ct_llm.train.recipe import Recipe
    from ct_llm.train.runner import train_adapter
    from ct_llm.workspace import Workspace

    workspace, job_dir = Path(argv[0]), Path(argv[1])
    resume = "--resume" in argv[2:]
    ws = Workspace.open(workspace)
    job = TrainingJob.load(job_dir)
    main = int(os.environ.get("RANK", "0")) == 0

    def progress(logs: dict[str, Any]) -> None:
        if main:
            shown = {k: v for k, v in logs.items() if k in ("step", "loss", "tokens_per_s")}
            print(f"  {shown}", file=sys.stderr, flush=True)

    metrics = train_adapter(
        Recipe.model_validate(job.recipe),
        ws.require_base_model(),
        Path(job.dataset_path),
        ws.adapters_dir / job.version,
        init_adapter=Path(job.init_adapter) if job.init_adapter else None,
        on_log=progress,
        checkpoint_dir=job_dir,
        resume=resume,
        lineage=job.lineage(),
    )
    if main:
        atomic_write_json(job_dir / RESULT_FILE, metrics)


if __name__ == "__main__":
    _worker(sys.argv[1:])
