"""The on-disk layout of a dataset version, shared by the writer (curate) and the readers (train,
evals). One folder per kind, one Parquet file per split, columns exactly as TRL's trainers take
them in conversational format:

    datasets/<version>/
      manifest.json
      dpo/train.parquet  dpo/test.parquet    prompt, chosen, rejected   (DPOTrainer)
      kto/train.parquet  kto/test.parquet    prompt, completion, label  (KTOTrainer)
      sft/train.parquet  sft/test.parquet    prompt, completion         (SFTTrainer)

`test` is the held-out split (kept out of training, read by the judge); the name is the one
`datasets.load_dataset("<version>/dpo")` maps to a `test` split without extra arguments. A split
with no rows has no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

KINDS = ("dpo", "kto", "sft")
SPLITS = ("train", "test")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

SCHEMAS: dict[str, pa.Schema] = {
    "dpo": pa.schema([("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)]),
    "kto": pa.schema([("prompt", MESSAGES), ("completion", MESSAGES), ("label", pa.bool_())]),
    "sft": pa.schema([("prompt", MESSAGES), ("completion", MESSAGES)]),
}


def split_path(dataset_dir: Path, kind: str, split: str) -> Path:
    return dataset_dir / kind / f"{split}.parquet"


def read_rows(dataset_dir: Path, kind: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of one kind and split as plain dicts (empty when the split has no file)."""
    import pyarrow.parquet as pq

    path = split_path(dataset_dir, kind, split)
    if not path.is_file():
        return []
    return pq.read_table(path).to_pylist()
