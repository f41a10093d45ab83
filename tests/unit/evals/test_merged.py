"""The merged-candidate path (evals/merged.py): which mode runs where, and that merging an
adapter into the base weights gives the same model as base + adapter (the real SmolLM2, PEFT).
Serving the merged model on a real vLLM has no integration test since evals answer on the
adapter path (test_loop.py says why); `ct-llm bench eval` exercises it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.atomic import process_umask
from ct_llm.errors import ConfigError
from ct_llm.evals.merged import merge_adapter, resolve_mode


@pytest.mark.parametrize(
    ("mode", "remote", "cuda", "peft", "grouped", "expected"),
    [
        # managed CPU server with vLLM's stock torch LoRA ops (a weight copy per token)
        ("auto", False, False, True, False, "merged"),
        # ... with ct-llm's grouped ops (serving/vllm-cpu-lora): answer as users are served
        ("auto", False, False, True, True, "adapter"),
        ("auto", False, True, True, False, "adapter"),  # GPU: punica kernels make LoRA cheap
        ("auto", True, False, True, False, "adapter"),  # someone else's server: not our own
        ("auto", False, False, False, False, "adapter"),  # nothing to merge with
        ("adapter", False, False, True, False, "adapter"),
        ("merged", True, True, True, True, "merged"),  # asked for: honoured anywhere
    ],
)
def test_resolve_mode(
    mode: str, remote: bool, cuda: bool, peft: bool, grouped: bool, expected: str
) -> None:
    got = resolve_mode(
        mode,  # type: ignore[arg-type]
        remote_server=remote,
        cuda=cuda,
        peft_available=peft,
        grouped_lora=grouped,
    )
    assert got == expected


def test_merged_without_peft_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train` extra"):
        resolve_mode("merged", remote_server=False, cuda=False, peft_available=False)
    with pytest.raises(ConfigError, match="unknown"):
        resolve_mode("fast", remote_server=False, cuda=False, peft_available=True)  # type: ignore[arg-type]


def test_merged_model_computes_what_base_plus_adapter_computes(
    base_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ct_llm.bench.eval import make_random_adapter

    adapter = make_random_adapter(base_model_dir, tmp_path / "adapter", r=8, seed=1)
    merged_dir = merge_adapter(base_model_dir, adapter, tmp_path / "merged", dtype="float32")

    names = {p.name for p in merged_dir.iterdir()}
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= names
    assert not any(n.startswith("adapter_") for n in names)  # a plain model, not an adapter
    assert "ct-llm-import.json" in names  # the base folder's metadata travels with it
    # safetensors writes 0600; the vLLM serving the merged model may run as another user.
    readable = 0o666 & ~process_umask()
    assert (merged_dir / "model.safetensors").stat().st_mode & 0o777 == readable

    tok = AutoTokenizer.from_pretrained(str(merged_dir))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=torch.float32)
    with torch.inference_mode():
        plain = base(ids).logits
        with_adapter = PeftModel.from_pretrained(base, str(adapter)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)(
            ids
        ).logits
    # The adapter changes the model (otherwise the comparison below would prove nothing) ...
    assert (with_adapter - plain).abs().max().item() > 0.1
    # ... and the merged weights reproduce that change up to float32 rounding.
    assert (merged - with_adapter).abs().max().item() < 1e-3
