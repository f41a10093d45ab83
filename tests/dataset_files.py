"""Writing dataset versions in the layout of `ct_llm.curate.layout`, for tests of the readers.

Importable as `dataset_files` from any test: pytest puts `tests/` on sys.path for the root
conftest.py (there is no __init__.py, so the default `prepend` import mode applies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ct_llm.curate.layout import SCHEMAS, split_path


def write_split(dataset_dir: Path, kind: str, split: str, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as `<dataset_dir>/<kind>/<split>.parquet` with the kind's schema (keys
    outside the schema are dropped, as the layout has no extra columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = split_path(dataset_dir, kind, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[kind]), path)
    return path


def write_manifest(dataset_dir: Path, version: str, **fields: Any) -> Path:
    path = dataset_dir / "manifest.json"
    dataset_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": version, "files": {}, **fields}))
    return path


def tiny_dpo_dataset(root: Path, pairs: int = 8) -> Path:
    """A dataset version of `pairs` near-identical return-policy pairs (60 days, not 30)."""
    rows = [
        {
            "prompt": [{"role": "user", "content": f"How long can I return item {i}?"}],
            "chosen": [{"role": "assistant", "content": "You have 60 days to return it."}],
            "rejected": [{"role": "assistant", "content": "You have 30 days to return it."}],
        }
        for i in range(pairs)
    ]
    write_split(root, "dpo", "train", rows)
    write_manifest(root, root.name)
    return root
