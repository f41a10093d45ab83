"""apply_umask: artifact files end up with the modes a plain open() would give them, so a vLLM
server running as another user than the trainer can read the adapter."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ct_llm.atomic import apply_umask, process_umask


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


def _write(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    path.chmod(mode)
    return path


def test_owner_only_files_become_readable_by_the_umask(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "adapter"
    weights = _write(folder / "adapter_model.safetensors", 0o600)  # as safetensors writes it
    nested = _write(folder / "sub" / "tokenizer.json", 0o600)
    tool = _write(folder / "run.sh", 0o700)
    (folder / "sub").chmod(0o700)
    folder.chmod(0o700)  # as mkdtemp makes it
    apply_umask(folder)
    assert _mode(weights) == _mode(nested) == 0o644
    assert _mode(tool) == 0o755  # an executable stays one
    assert _mode(folder) == _mode(folder / "sub") == 0o755


def test_a_private_umask_is_respected(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        weights = _write(tmp_path / "a" / "w.safetensors", 0o644)
        apply_umask(tmp_path / "a")
    finally:
        os.umask(old)
    assert _mode(weights) == 0o600


def test_links_out_of_the_folder_are_not_followed(tmp_path: Path, umask_022: None) -> None:
    outside = _write(tmp_path / "secret", 0o600)
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "link").symlink_to(outside)
    apply_umask(folder)
    assert _mode(outside) == 0o600


def test_process_umask_reads_without_changing_it(umask_022: None) -> None:
    assert process_umask() == 0o022
    assert os.umask(0o022) == 0o022
