from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.config import ServingConfig
from ct_llm.deploy.dtype import choose_dtype, serving_dtype
from ct_llm.deploy.vllm_server import VllmServer, build_vllm_command

AVX2 = frozenset({"sse4_2", "avx2", "fma"})


@pytest.mark.parametrize(
    ("setting", "gpu", "flags", "want"),
    [
        ("auto", True, AVX2, "bfloat16"),
        ("auto", False, AVX2, "float32"),  # bf16 would be emulated
        ("auto", False, AVX2 | {"avx512f", "avx512_bf16"}, "bfloat16"),
        ("auto", False, AVX2 | {"amx_bf16"}, "bfloat16"),
        ("bfloat16", False, AVX2, "bfloat16"),  # an explicit choice is kept
        ("float32", True, AVX2, "float32"),
    ],
)
def test_auto_serves_bf16_only_where_it_is_native(
    setting: str, gpu: bool, flags: frozenset[str], want: str
) -> None:
    assert choose_dtype(setting, gpu=gpu, cpu_flags=flags) == want


def _dtype_flag(server: VllmServer) -> str:
    cmd = build_vllm_command(server.model_dir, server.served_name, server.cfg, server.port)
    return cmd[cmd.index("--dtype") + 1]


def test_the_server_command_names_a_resolved_dtype(tmp_path: Path) -> None:
    dtype = _dtype_flag(VllmServer(tmp_path, "m", ServingConfig()))
    assert dtype in ("bfloat16", "float32") and dtype == serving_dtype("auto")
    assert _dtype_flag(VllmServer(tmp_path, "m", ServingConfig(dtype="float16"))) == "float16"
