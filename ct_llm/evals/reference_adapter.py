"""A reference adapter for the latency rule: the candidate's shape with zero weights.

Before the first promotion production is the bare base model, and what an adapter costs over
no adapter is the serving engine's LoRA path (~2-3x on vLLM-CPU, a few percent with GPU
kernels), the same for any adapter of that rank and those target modules. To price the
candidate itself, like with like, its latency is compared with an adapter of exactly its shape:
the same safetensors header (names, dtypes, shapes) and adapter_config.json, every weight zero.
A LoRA kernel does the same work whatever the values, so the two differ only by noise unless the
candidate has something the reference has not. Written without torch: the header is JSON.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
_CHUNK = 1 << 20


def write_reference_adapter(candidate_dir: Path, out_dir: Path) -> Path:
    """Copy the candidate's config and a zero-filled copy of its weights into `out_dir`."""
    candidate_dir, out_dir = Path(candidate_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(candidate_dir / CONFIG, out_dir / CONFIG)
    with (candidate_dir / WEIGHTS).open("rb") as src:
        (header_len,) = struct.unpack("<Q", src.read(8))
        header = src.read(header_len)
    json.loads(header)  # a corrupt header fails here, not inside vLLM
    data_len = (candidate_dir / WEIGHTS).stat().st_size - 8 - header_len
    with (out_dir / WEIGHTS).open("wb") as dst:
        dst.write(struct.pack("<Q", header_len))
        dst.write(header)
        left = data_len
        zeros = bytes(_CHUNK)
        while left > 0:
            step = min(left, _CHUNK)
            dst.write(zeros[:step])
            left -= step
    return out_dir


def adapter_shape(adapter_dir: Path) -> str:
    """ "rank 16, all-linear" style description for reports."""
    cfg = json.loads((Path(adapter_dir) / CONFIG).read_text(encoding="utf-8"))
    targets = cfg.get("target_modules")
    if isinstance(targets, list):
        targets = ",".join(sorted(str(t) for t in targets))
    return f"rank {cfg.get('r', '?')}, {targets or 'default'} modules"
