"""Serve an eval candidate as a merged model on its own short-lived vLLM server.

Why: vLLM-CPU has no LoRA kernels. Its LoRA path is a plain-torch fallback that gathers a copy
of the adapter weights per token, which made eval generation ~5x slower than the same server
without an adapter (`ct-llm bench eval`: prefill of 32 prompts 29.4 s with a rank-16 adapter,
2.8 s without). Folding the adapter into the base weights (W + scale * B @ A, PEFT's
`merge_and_unload`) gives the same function at base-model speed, for the cost of one merge (a
few seconds for a small model) and one server start.

The merged model answers the eval prompts only. What users will get - the adapter hot-loaded
into the live server - is still what the performance phase measures, so the latency rule of
the gate keeps seeing the adapter's serving cost. On GPUs vLLM's punica kernels make the adapter
path cheap, so `auto` keeps it there.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ct_llm.atomic import apply_umask
from ct_llm.config import ServingConfig
from ct_llm.errors import ConfigError

log = logging.getLogger(__name__)

Mode = Literal["auto", "adapter", "merged"]
# Everything of the base model folder a server needs besides the weights.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def resolve_mode(
    mode: Mode, *, remote_server: bool, cuda: bool, peft_available: bool, grouped_lora: bool = False
) -> str:
    """How the candidate answers the eval prompts: "adapter" (hot-loaded into the live server)
    or "merged" (merged weights on a second, managed server). Pure.

    auto: merged when ct-llm manages a CPU server (no CUDA here, no serving.url) whose serving
    environment lacks the grouped CPU LoRA ops (deploy/cpu_lora.py) and PEFT is installed; else
    the adapter path, which is what users get. An explicit "merged" that cannot work is an
    error rather than a silent fallback.
    """
    if mode == "adapter":
        return "adapter"
    if mode == "merged":
        if not peft_available:
            raise ConfigError(
                "eval.candidate_serving is 'merged' but PEFT is not installed; "
                "install ct-llm's `train` extra or set eval.candidate_serving: adapter"
            )
        return "merged"
    if mode != "auto":
        raise ConfigError(f"unknown eval.candidate_serving '{mode}'")
    slow_lora = not cuda and not remote_server and not grouped_lora
    return "merged" if peft_available and slow_lora else "adapter"


def detect_mode(mode: Mode, serving: ServingConfig) -> str:
    """`resolve_mode` with the facts of this machine."""
    try:
        import peft  # noqa: F401
        import torch
    except ImportError:
        peft_available = cuda = False
    else:
        peft_available, cuda = True, torch.cuda.is_available()
    remote = serving.url is not None
    grouped = False
    if mode == "auto" and not remote and not cuda:
        from ct_llm.deploy.cpu_lora import grouped_lora_installed
        from ct_llm.deploy.vllm_server import serving_python
        from ct_llm.errors import ServingError

        try:
            grouped = grouped_lora_installed(serving_python(serving))
        except ServingError:  # no serving environment: starting the server will say so
            grouped = False
    return resolve_mode(
        mode,
        remote_server=remote,
        cuda=cuda,
        peft_available=peft_available,
        grouped_lora=grouped,
    )


def merge_adapter(base_dir: Path, adapter_dir: Path, dest: Path, dtype: str = "bfloat16") -> Path:
    """Write base + adapter as one model folder at `dest` (safetensors, in `dtype`).

    The merge itself runs in float32 so the sum W + scale * B @ A is not rounded twice; the
    result is cast to the serving dtype once, when saved.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    dest.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(dest, safe_serialization=True)
    # Tokenizer, chat template, generation config: copied as they are, so the merged model
    # formats prompts exactly as the base does.
    for item in base_dir.iterdir():
        if item.is_file() and not item.name.endswith(_WEIGHT_SUFFIXES):
            if item.name.startswith("model") and item.name.endswith(".index.json"):
                continue  # the shard index belongs to the base weights
            if not (dest / item.name).exists():
                shutil.copy2(item, dest / item.name)
    apply_umask(dest)  # weights are written 0600; the vLLM that serves them may be another user
    return dest


@dataclass
class MergedServer:
    url: str
    served_as: str
    merge_s: float
    start_s: float


@contextlib.contextmanager
def serve_merged(
    base_dir: Path,
    adapter_dir: Path,
    served_as: str,
    serving: ServingConfig,
    *,
    memory_fraction: float,
    work_dir: Path,
    log_path: Path,
    port: int | None = None,
) -> Iterator[MergedServer]:
    """Merge the adapter into a temporary folder under `work_dir`, serve it on a free loopback
    port under `served_as`, and remove both when the block ends (also on error)."""
    from ct_llm.deploy.dtype import serving_dtype
    from ct_llm.deploy.vllm_server import VllmServer
    from ct_llm.net import free_port

    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="merged-", dir=work_dir) as tmp:
        t0 = time.perf_counter()
        dtype = serving_dtype(serving.dtype)
        model_dir = merge_adapter(base_dir, adapter_dir, Path(tmp) / "model", dtype)
        merge_s = time.perf_counter() - t0
        log.info("merged %s into the base weights in %.1f s", adapter_dir.name, merge_s)
        # Same engine flags as the live server, minus what only matters for it: no external
        # URL, loopback only, a small KV cache (eval batches are short-lived).
        cfg = serving.model_copy(
            update={"url": None, "host": "127.0.0.1", "memory_fraction": memory_fraction}
        )
        server = VllmServer(model_dir, served_as, cfg, port=port or free_port(), log_path=log_path)
        with server:
            yield MergedServer(server.url, served_as, merge_s, server.startup_s or 0.0)
