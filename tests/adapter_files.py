"""Adapter folders as `ct-llm train` leaves them, for tests of what reads them.

Importable as `adapter_files` from any test (pytest puts `tests/` on sys.path, as for
`dataset_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def seal_adapter(folder: Path, **fields: Any) -> Path:
    """Write the folder's manifest.json with the sha256 of its two adapter files, as the trainer
    does last: every load compares the files with it (ct_llm/integrity.py)."""
    from ct_llm.train.manifest import seal_adapter as seal

    seal(folder, **fields)
    return folder
