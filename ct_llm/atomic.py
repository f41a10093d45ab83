"""Atomic artifact writes: temp file/folder + fsync + rename, so a crash never leaves half a file.

Artifacts (datasets, adapters, reports) are immutable: writing over an existing one is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared read-only
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def process_umask() -> int:
    """The process umask. `os.umask` can only be read by setting it, and while it is set other
    threads would create files with the wrong mode, so Linux's /proc is asked first."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)  # the most private value for the instant it is in force
    os.umask(mask)
    return mask


def apply_umask(folder: Path) -> None:
    """Give `folder` and everything in it the modes that a plain open() or mkdir() would have
    given: 0o666 & ~umask for files (0o777 & ~umask for executables), 0o777 & ~umask for folders.

    safetensors (and so PEFT's and transformers' save_pretrained) writes weights 0600, and
    mkdtemp makes 0700 folders: a vLLM server running as another user than the trainer could
    not read the artifact. Symbolic links are left alone (chmod would follow them out of the
    folder). Call it on freshly written files only: a hard link shares its mode with its source.
    """
    mask = process_umask()
    # Bottom-up: a folder's mode changes only after everything in it is done.
    for dirpath, _, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                full = 0o777 if mode & 0o111 else 0o666
                os.chmod(path, full & ~mask)
        os.chmod(dirpath, 0o777 & ~mask)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; on success fsync it and rename it to `final`.

    On any exception the temporary folder is removed, so readers only ever see complete
    artifacts. `final` must not exist: artifacts are never modified.
    """
    if final.exists():
        raise FileExistsError(f"{final} already exists; artifacts are immutable")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)
        yield tmp
        fsync_tree(tmp)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
