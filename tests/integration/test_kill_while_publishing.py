"""`kill -9` while a dataset version or an adapter is published, then the next run.

A child process runs the real `curate_dataset` / `train_candidate`; its `os.rename` is wrapped
so that the process SIGKILLs itself just before or just after the rename that puts the
artifact's folder in place (so before its database row exists). The next real run must succeed,
and leave folders and rows that agree: no temporary folder, no folder without a row, no row
without a verified folder.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_models import FEEDBACK_TENANT, curated_workspace

from ct_llm import leftovers
from ct_llm.bench.feedback_data import load_into
from ct_llm.curate.dataset import curate_dataset
from ct_llm.integrity import verify_folder
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.store.models import DatasetVersion
from ct_llm.train.candidate import train_candidate
from ct_llm.train.checkpoints import interrupted_jobs
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration

TENANT = FEEDBACK_TENANT
# argv: workspace, area (the folder the artifact is renamed into), before|after, curate|train,
# [recipe]. Only renames into `area` are affected; every other rename runs as usual.
CHILD = """
import os, signal, sys
from pathlib import Path

root, area, when, stage = sys.argv[1:5]
real_rename = os.rename

def rename(src, dst, *args, **kwargs):
    publishing = Path(dst).parent == Path(area)
    if publishing and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real_rename(src, dst, *args, **kwargs)
    if publishing:
        os.kill(os.getpid(), signal.SIGKILL)

os.rename = rename
from ct_llm.workspace import Workspace
ws = Workspace.open(root)
if stage == "curate":
    from ct_llm.curate.dataset import curate_dataset
    curate_dataset(ws, "bench")
else:
    from ct_llm.train.candidate import train_candidate
    train_candidate(ws, "bench", recipe_path=sys.argv[5])
"""


def _killed_child(ws: Workspace, area: Path, when: str, stage: str, *extra: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ws.root), str(area), when, stage, *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _entries(area: Path) -> list[str]:
    return sorted(p.name for p in area.iterdir())


@pytest.mark.parametrize("when", ["before", "after"])
def test_curate_killed_around_the_rename_then_the_next_curation_succeeds(
    tmp_path: Path, when: str
) -> None:
    ws = Workspace.init(tmp_path / "ws")
    load_into(ws.database_url, 120, seed=4)
    _killed_child(ws, ws.datasets_dir, when, "curate")
    left = _entries(ws.datasets_dir)
    if when == "before":
        assert len(left) == 1 and left[0].startswith(f".{TENANT}-data-v1.")  # the temp folder
    else:
        assert left == [f"{TENANT}-data-v1"]  # complete, and no row knows it
    with session_scope(ws.database_url) as s:
        assert s.query(DatasetVersion).count() == 0

    result = curate_dataset(ws, TENANT)  # before the fix: FileExistsError

    assert result.version == f"{TENANT}-data-v1"
    with session_scope(ws.database_url) as s:
        rows = s.query(DatasetVersion).all()
        assert [(r.id, r.path) for r in rows] == [(result.version, str(result.path))]
    verify_folder(Path(str(result.path)))  # every file as its manifest recorded
    expected = [".orphans", result.version] if when == "after" else [result.version]
    assert _entries(ws.datasets_dir) == expected
    if when == "after":
        (orphan,) = (ws.datasets_dir / leftovers.ORPHANS).iterdir()
        assert orphan.name.startswith(f"{result.version}-")
        assert (orphan / "manifest.json").is_file()  # kept whole, for inspection


RECIPE = {
    "method": "dpo",
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "max_length": 96,
    "learning_rate": 3e-3,
    "lora": {"r": 4, "alpha": 8},
    "thumbs_up_anchors": False,
}


def test_train_killed_after_the_rename_then_the_next_training_adopts_it(
    tmp_path: Path, base_model_dir: Path
) -> None:
    ws = curated_workspace(tmp_path / "ws", base_model_dir)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    _killed_child(ws, ws.adapters_dir, "after", "train", str(recipe))
    v1 = registry.adapter_version_id(TENANT, ws.config.adapter_name, 1)
    assert _entries(ws.adapters_dir) == [v1]
    assert [j.version for j, _ in interrupted_jobs(ws.checkpoints_dir, TENANT)] == [v1]
    with session_scope(ws.database_url) as s:
        assert registry.list_versions(s, TENANT) == []

    # The next real run: before the fix, "adapters/...-v1 already exists".
    second = train_candidate(ws, TENANT, recipe_path=str(recipe))

    v2 = registry.adapter_version_id(TENANT, ws.config.adapter_name, 2)
    assert second["version"] == v2
    with session_scope(ws.database_url) as s:
        versions = registry.list_versions(s, TENANT)
        assert [(mv.id, mv.state) for mv in versions] == [(v1, "candidate"), (v2, "candidate")]
        for mv in versions:
            assert verify_folder(Path(mv.path), registry.pinned_files(mv))
        adopted = [e for e in registry.history(s, TENANT, v1) if e.action == "train"]
        assert adopted[0].details["adopted"] is True
    assert _entries(ws.adapters_dir) == [v1, v2]
    assert interrupted_jobs(ws.checkpoints_dir, TENANT) == []
    assert _entries(ws.checkpoints_dir) == []
