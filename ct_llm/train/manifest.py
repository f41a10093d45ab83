"""An adapter's `manifest.json`: everything needed to explain, reproduce or undo it.

Lineage (tenant, version, dataset version and the dataset manifest's hash, parent adapter), the
base model and the hash of its weights, the recipe with the hash of its resolved settings, seed,
git commit, library versions, the metrics (wall time, tokens/s, losses, rewards) and the log of
every step, and the sha256 of the adapter's own two files (`files`, checked before every load:
ct_llm/integrity.py). The adapter folder holds nothing else: no pickle, no model card.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_write_json, sha256_file
from ct_llm.integrity import MANIFEST_FILE

LEGACY_FILE = "ct-llm-train.json"  # written by ct-llm before the manifest had lineage
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_HASH_CACHE = ".ct-llm-sha256.json"


def config_sha256(settings: dict[str, Any]) -> str:
    """Hash of resolved settings: equal settings, equal hash, whatever file they came from."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_sha256(model_dir: Path) -> str:
    """One hash over the model's weights and config (sha256 of each file, in name order).

    Hashing 16 GB of weights takes a minute, so each file's hash is cached next to it, keyed by
    its size and modification time; models are never modified in place, a changed file is a
    different model and is hashed again.
    """
    cache_path = model_dir / _HASH_CACHE
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    files = sorted(
        p for p in model_dir.iterdir() if p.suffix == ".safetensors" or p.name == "config.json"
    )
    digest = hashlib.sha256()
    changed = False
    for path in files:
        st = path.stat()
        key = f"{path.name}:{st.st_size}:{st.st_mtime_ns}"
        if key not in cache:
            cache[key] = sha256_file(path)
            changed = True
        digest.update(f"{path.name}={cache[key]}\n".encode())
    if changed and os.access(model_dir, os.W_OK):
        atomic_write_json(cache_path, cache)
    return digest.hexdigest()


def adapter_files_sha256(adapter_dir: Path) -> dict[str, str]:
    return {name: sha256_file(adapter_dir / name) for name in ADAPTER_FILES}


def seal_adapter(adapter_dir: Path, **fields: Any) -> dict[str, str]:
    """Write a manifest for an adapter made outside `ct-llm train` (a benchmark's random
    adapter, an imported one): its two files' sha256, which every load checks
    (ct_llm/integrity.py). Returns the hashes, for the registry row."""
    files = adapter_files_sha256(adapter_dir)
    atomic_write_json(
        adapter_dir / MANIFEST_FILE, {"version": adapter_dir.name, **fields, "files": files}
    )
    return files


def read_manifest(adapter_dir: Path) -> dict[str, Any] | None:
    """The adapter's manifest (or the older train record); None when it has neither."""
    for name in (MANIFEST_FILE, LEGACY_FILE):
        path = adapter_dir / name
        if path.is_file():
            return json.loads(path.read_text())
    return None
