"""The adapter folder is published with modes by the umask: safetensors writes the weights 0600
and a vLLM server running as another user than the trainer must still read them. (The real
training path is tests/integration/test_train.py; this checks the runner's last step.)"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ct_llm.train.manifest import ADAPTER_FILES, MANIFEST_FILE
from ct_llm.train.runner import _finish


def test_the_adapter_folder_is_readable_by_the_umask_before_it_is_published(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        tmp = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, as atomic_directory's folder
        for name in ADAPTER_FILES:
            (tmp / name).write_text("{}")
            (tmp / name).chmod(0o600)
        record: dict = {"recipe": "r"}
        _finish(tmp, record)
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp.iterdir()} == {
        **{name: 0o644 for name in ADAPTER_FILES},
        MANIFEST_FILE: 0o644,
    }
    assert tmp.stat().st_mode & 0o777 == 0o755
    assert set(json.loads((tmp / MANIFEST_FILE).read_text())["files"]) == set(ADAPTER_FILES)
