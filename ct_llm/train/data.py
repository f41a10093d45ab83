"""What a training method reads from a dataset version (layout: `ct_llm.curate.layout`), checked
row by row, and which method the data calls for when the recipe says `method: auto`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ct_llm.atomic import sha256_file
from ct_llm.curate.layout import read_rows, split_path
from ct_llm.errors import ConfigError, NoDataError

# The columns each method reads, and what the rows are called in messages.
COLUMNS = {
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "sft": ("prompt", "completion"),
}
_NAMES = {"dpo": "preference pairs", "kto": "KTO examples", "sft": "SFT examples"}
_HINTS = {
    "dpo": "collect edits, votes or ratings and run `ct-llm curate`",
    "kto": "collect thumbs up/down and run `ct-llm curate`",
    "sft": "collect edits or 5-star ratings, or import golden examples, and run `ct-llm curate`",
}


def read_split(dataset_dir: Path, kind: str, split: str = "train") -> list[dict[str, Any]]:
    """`read_rows`, with an unreadable file reported as a ConfigError naming it."""
    import pyarrow as pa

    try:
        return read_rows(dataset_dir, kind, split)
    except (pa.ArrowException, OSError) as e:
        path = split_path(dataset_dir, kind, split)
        raise ConfigError(
            f"{path} is not a readable Parquet file ({e}); re-run `ct-llm curate`"
        ) from None


def load_examples(dataset_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The training rows of one kind, reduced to the columns its method reads."""
    path = split_path(dataset_dir, kind, "train")
    name, hint = _NAMES[kind], _HINTS[kind]
    if not path.is_file():
        if (dataset_dir / "manifest.json").is_file():
            # A split with no rows has no file: the version exists but holds none of this kind.
            raise NoDataError(
                f"dataset version {dataset_dir} holds no {name} (no {path.name} in "
                f"{path.parent}); {hint}"
            )
        raise NoDataError(f"{path} does not exist; run `ct-llm curate` to write a dataset version")
    rows = []
    for n, row in enumerate(read_split(dataset_dir, kind, "train"), 1):
        missing = [k for k in COLUMNS[kind] if row.get(k) is None or row.get(k) == []]
        if missing:
            raise ConfigError(f"{path} row {n} lacks {', '.join(missing)}; re-run `ct-llm curate`")
        rows.append({k: row[k] for k in COLUMNS[kind]})
    if not rows:
        raise NoDataError(f"{path} holds no {name}; {hint}")
    return rows


def load_pairs(dataset_dir: Path) -> list[dict[str, Any]]:
    """The preference pairs of a dataset version (`dpo/train.parquet`)."""
    return load_examples(dataset_dir, "dpo")


def choose_method(dataset_dir: Path) -> str:
    """`method: auto`: the strongest signal the version has. Preference pairs (DPO) say what is
    better than what; unpaired votes (KTO) only good or bad; SFT examples only what is good."""
    for kind in ("dpo", "kto", "sft"):
        if split_path(dataset_dir, kind, "train").is_file():
            return kind
    raise NoDataError(
        f"dataset version {dataset_dir} has no training rows of any kind; run `ct-llm curate`"
    )


def dataset_info(dataset_dir: Path) -> dict[str, Any]:
    manifest = dataset_dir / "manifest.json"
    if not manifest.is_file():
        return {"path": str(dataset_dir), "version": None, "manifest_sha256": None}
    data = json.loads(manifest.read_text())
    return {
        "path": str(dataset_dir),
        "version": data.get("version"),
        "manifest_sha256": sha256_file(manifest),
        "files": data.get("files"),
    }
