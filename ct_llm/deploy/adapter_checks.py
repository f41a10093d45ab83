"""Checks an adapter folder must pass before its path is handed to vLLM.

vLLM loads whatever path it is given, and pickle-based weights (`.bin`, `.pt`) execute code on
load, so the folder must hold only safetensors weights and live inside the workspace's
adapters/ folder (no `..`, no symlink leading elsewhere). The rank is checked here because vLLM
would otherwise fail with a shape error deep inside the engine. Last, because it reads every byte,
each file must match the sha256 recorded when the adapter was trained (ct_llm/integrity.py): what
was evaluated and gated is what is served. File reads only: no torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ct_llm.errors import CtLlmError
from ct_llm.integrity import PICKLE_SUFFIXES, verify_folder

ADAPTER_CONFIG = "adapter_config.json"
# The fields that decide whether LoRA weights fit a base model's matrices.
SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")


class AdapterCheckError(CtLlmError):
    """An adapter folder is unsafe or does not fit the server or the base model."""


def _inside(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AdapterCheckError(f"cannot read {what} {path}: {e}") from None
    if not isinstance(data, dict):
        raise AdapterCheckError(f"{what} {path} is not a JSON object")
    return data


def adapter_rank(config: dict[str, Any]) -> int:
    """The largest LoRA rank in the adapter: `r`, or a higher per-module `rank_pattern` entry."""
    ranks = [config.get("r")]
    pattern = config.get("rank_pattern") or {}
    if isinstance(pattern, dict):
        ranks.extend(pattern.values())
    ints = [int(r) for r in ranks if isinstance(r, int) and not isinstance(r, bool)]
    if not ints:
        raise AdapterCheckError(f"{ADAPTER_CONFIG} has no integer LoRA rank `r`")
    return max(ints)


def _check_location(path: Path, adapters_dir: Path) -> Path:
    if ".." in path.parts:
        raise AdapterCheckError(
            f"adapter path {path} contains '..'; give the folder under {adapters_dir} directly"
        )
    root = adapters_dir.resolve()
    resolved = path.resolve()
    if not _inside(resolved, root):
        raise AdapterCheckError(
            f"adapter path {path} resolves to {resolved}, outside the workspace's adapters folder "
            f"{root}; only adapters written by `ct-llm train` (or copied into it) are served"
        )
    if not resolved.is_dir():
        raise AdapterCheckError(f"adapter folder {path} does not exist")
    return resolved


def _check_files(resolved: Path, root: Path) -> None:
    weights = []
    for item in sorted(resolved.rglob("*")):
        if item.is_symlink() and not _inside(item.resolve(), root):
            raise AdapterCheckError(
                f"{item} is a symlink to {item.resolve()}, outside {root}; copy the file instead"
            )
        if not item.is_file():
            continue
        if item.suffix.lower() in PICKLE_SUFFIXES:
            raise AdapterCheckError(
                f"adapter folder {resolved} holds {item.name}: pickle-based weights can run code "
                "when loaded and are refused; save the adapter with safetensors "
                "(save_pretrained(..., safe_serialization=True)) and delete that file"
            )
        if item.suffix == ".safetensors":
            weights.append(item)
    if not weights:
        raise AdapterCheckError(
            f"adapter folder {resolved} has no .safetensors weights; "
            "save it with save_pretrained(..., safe_serialization=True)"
        )


def _check_base_model(config: dict[str, Any], base_model_dir: Path) -> None:
    trained_on = config.get("base_model_name_or_path")
    if not trained_on:
        return
    trained_cfg_path = Path(str(trained_on)) / "config.json"
    # A hub id or a folder on another machine cannot be compared; vLLM still checks shapes.
    if not trained_cfg_path.is_file():
        return
    base_cfg_path = base_model_dir / "config.json"
    if not base_cfg_path.is_file():
        raise AdapterCheckError(f"base model folder {base_model_dir} has no config.json")
    trained = _read_json(trained_cfg_path, "model config")
    base = _read_json(base_cfg_path, "model config")
    diffs = []
    if trained.get("architectures") != base.get("architectures"):
        diffs.append(f"architectures {trained.get('architectures')} vs {base.get('architectures')}")
    for field in SHAPE_FIELDS:
        if trained.get(field) != base.get(field):
            diffs.append(f"{field} {trained.get(field)} vs {base.get(field)}")
    if diffs:
        raise AdapterCheckError(
            f"adapter was trained on {trained_on}, which does not match the served base model "
            f"{base_model_dir} ({'; '.join(diffs)}); retrain it on the served base model"
        )


def check_adapter(
    path: Path | str,
    adapters_dir: Path | str,
    max_lora_rank: int,
    base_model_dir: Path | str | None = None,
    files_sha256: Mapping[str, str] | None = None,
) -> None:
    """Raise AdapterCheckError unless `path` is a safe, servable LoRA adapter folder, and
    IntegrityError unless its files are those its manifest (and `files_sha256`, the registry's
    copy of the hashes, when given) recorded at training."""
    path, adapters_dir = Path(path), Path(adapters_dir)
    resolved = _check_location(path, adapters_dir)
    _check_files(resolved, adapters_dir.resolve())
    config_path = resolved / ADAPTER_CONFIG
    if not config_path.is_file():
        raise AdapterCheckError(
            f"adapter folder {path} has no {ADAPTER_CONFIG}; it is not a PEFT adapter"
        )
    config = _read_json(config_path, ADAPTER_CONFIG)
    peft_type = config.get("peft_type")
    if peft_type is not None and str(peft_type).upper() != "LORA":
        raise AdapterCheckError(f"adapter {path} is a {peft_type} adapter; vLLM serves LoRA only")
    rank = adapter_rank(config)
    if rank > max_lora_rank:
        raise AdapterCheckError(
            f"adapter rank {rank} exceeds the server's --max-lora-rank {max_lora_rank}; retrain "
            f"with a lower rank or restart serving with serving.max_lora_rank={rank}"
        )
    if base_model_dir is not None:
        _check_base_model(config, Path(base_model_dir))
    verify_folder(resolved, files_sha256)
