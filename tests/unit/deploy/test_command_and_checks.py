"""vLLM command line, adapter folder checks (hostile paths), log tails: no model, no vLLM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from adapter_files import seal_adapter

from ct_llm.config import ServingConfig
from ct_llm.deploy.adapter_checks import AdapterCheckError, adapter_rank, check_adapter
from ct_llm.deploy.vllm_server import (
    VLLM_ENV,
    build_vllm_command,
    meaningful_log_tail,
    serving_python,
)
from ct_llm.errors import CtLlmError, ServingError

BASE_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
}


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_build_vllm_command_carries_every_serving_setting() -> None:
    cfg = ServingConfig(
        host="0.0.0.0",
        max_loras=3,
        max_lora_rank=32,
        max_model_len=1024,
        memory_fraction=0.25,
        dtype="float32",
        extra_args=["--seed", "7"],
    )
    cmd = build_vllm_command(Path("/m/base"), "smol", cfg, 18003)
    assert cmd[:2] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(cmd, "--model") == "/m/base"
    assert _flag(cmd, "--served-model-name") == "smol"
    assert "--enable-lora" in cmd
    assert _flag(cmd, "--max-lora-rank") == "32"
    assert _flag(cmd, "--max-loras") == "3"
    assert _flag(cmd, "--dtype") == "float32"
    assert _flag(cmd, "--max-model-len") == "1024"
    assert _flag(cmd, "--gpu-memory-utilization") == "0.25"
    assert _flag(cmd, "--host") == "0.0.0.0"
    assert _flag(cmd, "--port") == "18003"
    assert cmd[-2:] == ["--seed", "7"]
    assert VLLM_ENV == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def test_serving_python_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CT_LLM_VLLM_PYTHON", raising=False)
    with pytest.raises(ServingError, match="make install-serving"):
        serving_python(ServingConfig(python=str(tmp_path / "nope" / "python")))
    fake = tmp_path / "python"
    fake.write_text("")
    monkeypatch.setenv("CT_LLM_VLLM_PYTHON", str(fake))
    assert serving_python(ServingConfig()) == fake


def _write_adapter(folder: Path, r: int = 8, base: Path | None = None) -> Path:
    folder.mkdir(parents=True)
    cfg = {
        "peft_type": "LORA",
        "r": r,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": str(base) if base else None,
    }
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return seal_adapter(folder)


@pytest.fixture
def adapters(tmp_path: Path) -> Path:
    root = tmp_path / "ws" / "adapters"
    root.mkdir(parents=True)
    return root


def test_good_adapter_passes(adapters: Path) -> None:
    check_adapter(_write_adapter(adapters / "t-a-v1"), adapters, 16)


def test_dotdot_path_is_refused_even_if_it_lands_inside(adapters: Path) -> None:
    _write_adapter(adapters / "t-a-v1")
    with pytest.raises(AdapterCheckError, match=r"'\.\.'"):
        check_adapter(adapters / "t-a-v1" / ".." / "t-a-v1", adapters, 16)


def test_dotdot_escape_is_refused(adapters: Path) -> None:
    outside = _write_adapter(adapters.parent / "elsewhere")
    with pytest.raises(AdapterCheckError):
        check_adapter(adapters / ".." / outside.name, adapters, 16)


def test_absolute_path_outside_is_refused(adapters: Path, tmp_path: Path) -> None:
    outside = _write_adapter(tmp_path / "outside" / "evil")
    with pytest.raises(AdapterCheckError, match="outside the workspace's adapters folder"):
        check_adapter(outside, adapters, 16)


def test_adapters_dir_itself_is_refused(adapters: Path) -> None:
    with pytest.raises(AdapterCheckError, match="outside"):
        check_adapter(adapters, adapters, 16)


def test_symlinked_folder_escaping_is_refused(adapters: Path, tmp_path: Path) -> None:
    outside = _write_adapter(tmp_path / "outside" / "evil")
    (adapters / "t-a-v2").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AdapterCheckError, match="resolves to"):
        check_adapter(adapters / "t-a-v2", adapters, 16)


def test_symlinked_weight_file_escaping_is_refused(adapters: Path, tmp_path: Path) -> None:
    folder = adapters / "t-a-v3"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8}))
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"\0")
    (folder / "adapter_model.safetensors").symlink_to(secret)
    with pytest.raises(AdapterCheckError, match="symlink"):
        check_adapter(folder, adapters, 16)


@pytest.mark.parametrize("name", ["adapter_model.bin", "weights.pt", "extra/state.pkl"])
def test_pickle_weights_are_refused(adapters: Path, name: str) -> None:
    folder = _write_adapter(adapters / "t-a-v4")
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(AdapterCheckError, match="pickle"):
        check_adapter(folder, adapters, 16)


def test_missing_safetensors_or_config_is_refused(adapters: Path) -> None:
    folder = _write_adapter(adapters / "t-a-v5")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterCheckError, match="no .safetensors"):
        check_adapter(folder, adapters, 16)
    folder = _write_adapter(adapters / "t-a-v6")
    (folder / "adapter_config.json").unlink()
    with pytest.raises(AdapterCheckError, match="adapter_config.json"):
        check_adapter(folder, adapters, 16)
    with pytest.raises(AdapterCheckError, match="does not exist"):
        check_adapter(adapters / "t-a-v99", adapters, 16)


def test_rank_above_server_limit_names_both_fixes(adapters: Path) -> None:
    folder = _write_adapter(adapters / "t-a-v7", r=64)
    with pytest.raises(CtLlmError) as info:
        check_adapter(folder, adapters, 16)
    msg = str(info.value)
    assert "adapter rank 64 exceeds the server's --max-lora-rank 16" in msg
    assert "serving.max_lora_rank=64" in msg
    check_adapter(folder, adapters, 64)


def test_rank_pattern_counts() -> None:
    assert adapter_rank({"r": 8, "rank_pattern": {"q_proj": 32}}) == 32
    with pytest.raises(AdapterCheckError):
        adapter_rank({"r": "eight"})


def test_base_model_mismatch_is_refused(adapters: Path, tmp_path: Path) -> None:
    served = tmp_path / "models" / "served"
    served.mkdir(parents=True)
    (served / "config.json").write_text(json.dumps(BASE_CONFIG))
    same = tmp_path / "models" / "same"
    same.mkdir()
    (same / "config.json").write_text(json.dumps(BASE_CONFIG))
    other = tmp_path / "models" / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({**BASE_CONFIG, "hidden_size": 960}))
    check_adapter(_write_adapter(adapters / "t-a-v8", base=same), adapters, 16, served)
    with pytest.raises(AdapterCheckError, match="hidden_size 960 vs 576"):
        check_adapter(_write_adapter(adapters / "t-a-v9", base=other), adapters, 16, served)
    # Trained from a hub id (no local folder): nothing to compare, so it passes.
    hub = _write_adapter(adapters / "t-a-v10")
    cfg = json.loads((hub / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "org/m"
    (hub / "adapter_config.json").write_text(json.dumps(cfg))
    check_adapter(seal_adapter(hub), adapters, 16, served)


def test_log_tail_surfaces_root_cause_and_hint() -> None:
    log = "\n".join(
        ["INFO starting"]
        + [f"noise {i}" for i in range(50)]
        + ["ERROR ValueError: Available memory on node 0 is less than requested memory for kv"]
        + [f'  File "x.py", line {i}' for i in range(30)]
        + ["RuntimeError: Engine core initialization failed.", "", "Loading: 50%|##| 1/2 [1.0it/s]"]
    )
    tail = meaningful_log_tail(log)
    assert "hint: " in tail and "serving.memory_fraction" in tail
    assert "cause: ValueError: Available memory" in tail
    assert tail.strip().endswith("RuntimeError: Engine core initialization failed.")
    assert "noise 3" not in tail and "it/s]" not in tail
    assert os.linesep in tail


def test_an_error_quoted_in_a_warning_is_not_reported_as_the_cause() -> None:
    log = "\n".join(
        [
            "WARNING 11-26 [system_utils.py:255] Found ulimit of 20000 and failed to "
            "automatically increase with error x. This can cause fd limit errors like "
            "`OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n",
            "TimeoutError: engine did not start",
        ]
    )
    tail = meaningful_log_tail(log)
    assert "cause: TimeoutError: engine did not start" in tail
    assert "cause: OSError" not in tail


def test_each_managed_replica_gets_its_own_cores_when_configured(tmp_path: Path) -> None:
    from ct_llm.deploy.vllm_server import VllmServer

    cfg = ServingConfig(replicas=2, cpu_bind=["0", "1"])
    parent = {"PATH": "/bin", "PYTHONPATH": "/elsewhere", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    pinned = VllmServer(tmp_path, "m", cfg, cpu_bind=cfg.cpu_bind[1]).environment(parent)
    assert pinned["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert "PYTHONPATH" not in pinned and pinned["PATH"] == "/bin"
    assert all(pinned[k] == v for k, v in VLLM_ENV.items())
    # No binding configured: whatever the operator's environment says stays.
    free = VllmServer(tmp_path, "m", ServingConfig()).environment(parent)
    assert free["VLLM_CPU_OMP_THREADS_BIND"] == "auto"


def test_cpu_bind_needs_one_core_list_per_replica() -> None:
    with pytest.raises(ValueError, match="1 core list\\(s\\) for 2 replica"):
        ServingConfig(replicas=2, cpu_bind=["0-3"])
    assert ServingConfig(replicas=2).cpu_bind == []
