"""Throughput accounting: the LoRA FLOPs formula, the GPU peak table, MFU, the callback (alone and
inside a real transformers Trainer on a tiny model), and out-of-memory errors turned into advice."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from tiny_models import tiny_llama

from ct_llm.errors import ConfigError
from ct_llm.train import throughput
from ct_llm.train.recipe import Recipe
from ct_llm.train.throughput import (
    PEAK_BF16_TFLOPS,
    ThroughputCallback,
    lora_flops_per_token,
    matmul_parameters,
    mfu,
    peak_flops,
    translate_oom,
)

# Llama-3.1-8B: 8,030,261,248 parameters, 525,336,576 of them the (untied) input embedding, which
# is a lookup: 7,504,924,672 in matmuls. LoRA r=16 on all 7 linear layers of 32 blocks:
# (q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096, gate/up/down 3 x (4096+14336)) x 16 x 32
# = 41,943,040 adapter weights, which take part in matmuls too.
LLAMA_8B_MATMUL = 7_504_924_672 + 41_943_040
LLAMA_8B_LORA = 41_943_040


def _tiny_llama(tie: bool = True) -> Any:
    return tiny_llama(128, tie=tie)


def _with_lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def test_lora_flops_per_token_for_llama_8b() -> None:
    flops = lora_flops_per_token(LLAMA_8B_MATMUL, LLAMA_8B_LORA, 32, 4096, 2048)
    # weights: 4 x 7,546,867,712 + 2 x 41,943,040 = 30,271,356,928
    # attention: 12 x 32 layers x 4096 x 2048 = 3,221,225,472
    assert flops == 33_492_582_400
    # The same accounting as full fine-tuning's 6N when everything trains.
    assert lora_flops_per_token(1000, 1000, 0, 0, 0) == 6000
    # DPO with the reference on every batch: one more forward, 2N + 4 x layers x hidden x seq.
    with_ref = lora_flops_per_token(
        LLAMA_8B_MATMUL, LLAMA_8B_LORA, 32, 4096, 2048, reference_forward=True
    )
    assert with_ref - flops == 2 * LLAMA_8B_MATMUL + 4 * 32 * 4096 * 2048


def test_matmul_parameters_of_an_8b_model_with_its_adapter() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):  # shapes only, no memory
        model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    assert matmul_parameters(get_peft_model(model, lora)) == (LLAMA_8B_MATMUL, LLAMA_8B_LORA)


def test_matmul_parameters_keeps_a_tied_embedding_once() -> None:
    tied, untied = _tiny_llama(tie=True), _tiny_llama(tie=False)
    everything = sum(p.numel() for p in untied.parameters())
    embedding = 128 * 32
    assert matmul_parameters(untied) == (everything - embedding, everything)
    # Tied: the one matrix is the output layer's too (and parameters() yields it once).
    assert matmul_parameters(tied)[0] == everything - embedding


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA GH200 480GB", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A100 80GB PCIe", 312),
        ("NVIDIA A10G", 125),
        ("NVIDIA L40S", 362),
        ("NVIDIA L4", 121),
        ("NVIDIA GeForce RTX 4090", 165),
        ("nvidia h100 pcie", 756),
    ],
)
def test_peak_flops_by_device_name(name: str, tflops: float) -> None:
    assert peak_flops(name) == tflops * 1e12


def test_peak_flops_unknown_devices() -> None:
    assert peak_flops("Tesla V100-SXM2-16GB") is None  # no bf16 tensor cores
    assert peak_flops("NVIDIA RTX A1000") is None  # not an A100, not an A10
    assert peak_flops("cpu") is None


def test_every_table_entry_is_reachable() -> None:
    # A key listed after one it contains would never match.
    for key, tflops in PEAK_BF16_TFLOPS:
        assert peak_flops(f"NVIDIA {key}") == tflops * 1e12, key


def test_mfu() -> None:
    # 3,000 tokens/s at 33.5 GFLOP a token on one H100: 10.2% of 989 TFLOP/s.
    assert mfu(3000, 33_492_582_400, 989e12) == pytest.approx(0.1016, abs=1e-4)
    # 8 GPUs at 8x the tokens: the same utilisation.
    assert mfu(24000, 33_492_582_400, 989e12, devices=8) == pytest.approx(0.1016, abs=1e-4)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _state(step: int = 0, seen: int = 0) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, num_input_tokens_seen=seen, log_history=[])


def _log(cb: ThroughputCallback, state: SimpleNamespace, logs: dict[str, Any]) -> dict[str, Any]:
    state.log_history.append({**logs, "step": state.global_step})  # as Trainer.log does first
    cb.on_log(None, state, None, logs=logs)
    return logs


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(throughput.time, "perf_counter", fake)
    return fake


def test_callback_rates_from_reported_tokens(clock: _Clock) -> None:
    model = _tiny_llama()
    cb = ThroughputCallback(model, seq_len=16, peak=1e9)
    args = SimpleNamespace(world_size=2, device=SimpleNamespace(type="cpu"))
    state = _state()
    cb.on_train_begin(args, state, None)
    cb.add_tokens(300, sequences=30)
    cb.add_tokens(300, sequences=30)
    clock.now += 2.0
    state.global_step = 2
    logs = _log(cb, state, {"loss": 1.0})
    assert logs["tokens_per_s"] == 300.0
    # 2 devices, measured mean length 10 tokens (not the 16 given).
    expected = 300 * cb.flops_per_token(10) / (1e9 * 2)
    assert logs["mfu"] == round(expected, 6)
    assert state.log_history[-1]["tokens_per_s"] == 300.0  # the history the runner reads
    # The end-of-training summary log brings no new tokens: left alone.
    clock.now += 1.0
    assert "tokens_per_s" not in _log(cb, state, {"train_runtime": 3.0})
    assert cb.summary() == {"tokens_per_s": 300.0, "mfu": round(expected, 6)}


def test_callback_reads_trl_and_trainer_token_counts(clock: _Clock) -> None:
    model = _tiny_llama()
    args = SimpleNamespace(world_size=1, device=SimpleNamespace(type="cpu"))
    trl = ThroughputCallback(model, seq_len=16)
    state = _state()
    trl.on_train_begin(args, state, None)
    clock.now += 4.0
    state.global_step = 1
    logs = _log(trl, state, {"loss": 1.0, "num_tokens": 1000.0})
    assert logs["tokens_per_s"] == 250.0
    assert "mfu" not in logs  # CPU: no peak to compare with

    counted = ThroughputCallback(model, seq_len=16)
    state = _state(seen=500)  # resumed: tokens before this run are not this run's
    counted.on_train_begin(args, state, None)
    clock.now += 1.0
    state.global_step, state.num_input_tokens_seen = 1, 900
    assert _log(counted, state, {"loss": 1.0})["tokens_per_s"] == 400.0

    trained = {"tokens": 0}
    pulled = ThroughputCallback(model, seq_len=16, count_tokens=lambda: trained["tokens"])
    state = _state()
    pulled.on_train_begin(args, state, None)
    clock.now += 0.5
    state.global_step, trained["tokens"] = 1, 50
    assert _log(pulled, state, {"loss": 1.0})["tokens_per_s"] == 100.0


def test_callback_in_a_real_trainer(tmp_path: Any) -> None:
    """Three steps of transformers' Trainer on a tiny LoRA model, CPU: every training log gets
    the rates, in the history and in what later callbacks see."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model = _with_lora(_tiny_llama())
    seen_by_next: list[dict[str, Any]] = []

    class Record(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            seen_by_next.append(dict(logs or {}))

    ids = torch.randint(0, 128, (6, 16))
    rows = [{"input_ids": row, "labels": row} for row in ids]
    cb = ThroughputCallback(model, seq_len=16, peak=1e9)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path),
            max_steps=3,
            per_device_train_batch_size=2,
            logging_steps=1,
            learning_rate=1e-3,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            include_num_input_tokens_seen="all",
        ),
        train_dataset=rows,
        callbacks=[cb, Record()],
    )
    trainer.train()

    steps = [e for e in trainer.state.log_history if "loss" in e]
    assert len(steps) == 3
    for entry in steps:
        assert entry["tokens_per_s"] > 0 and entry["mfu"] > 0
        assert math.isfinite(entry["loss"])
    assert sum(i["tokens"] for i in cb.intervals) == 3 * 2 * 16
    assert [e["tokens_per_s"] for e in seen_by_next if "loss" in e] == [
        e["tokens_per_s"] for e in steps
    ]
    assert cb.trainable_params == model.get_nb_trainable_parameters()[0]
    assert set(cb.summary()) == {"tokens_per_s", "mfu"}


def test_translate_oom_on_cuda() -> None:
    import torch

    err = translate_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert isinstance(err, ConfigError)
    text = str(err)
    assert "GPU memory" in text and "Tried to allocate 2 GiB" in text
    for advice in (
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "max_length",
        "gradient_checkpointing=true",
        "qlora=true",
    ):
        assert advice in text
    assert translate_oom(RuntimeError("CUDA error: out of memory")) is not None


def test_translate_oom_leaves_out_what_the_recipe_already_does() -> None:
    recipe = Recipe(
        qlora=True,
        gradient_checkpointing=True,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=8,
        max_length=2048,
    )
    text = str(translate_oom(RuntimeError("CUDA out of memory."), recipe))
    # The same 32 pairs per optimizer step, in passes of 2.
    assert "per_device_train_batch_size=2 gradient_accumulation_steps=16" in text
    assert "max_length=1024" in text
    assert "qlora" not in text and "gradient_checkpointing" not in text
    odd = recipe.model_copy(update={"per_device_train_batch_size": 3})
    assert "per_device_train_batch_size=1 gradient_accumulation_steps=24" in str(
        translate_oom(MemoryError(), odd)
    )
    one = recipe.model_copy(update={"per_device_train_batch_size": 1})
    assert "per_device_train_batch_size" not in str(translate_oom(MemoryError(), one))


def test_translate_oom_on_cpu() -> None:
    for exc in (
        MemoryError(),
        RuntimeError("[enforce fail] DefaultCPUAllocator: not enough memory: you tried to ..."),
    ):
        text = str(translate_oom(exc))
        assert "RAM" in text and "max_length" in text
        assert "qlora" not in text  # 4-bit loading is CUDA-only


def test_translate_oom_finds_a_wrapped_oom_and_ignores_other_errors() -> None:
    try:
        try:
            raise MemoryError()
        except MemoryError as inner:
            raise RuntimeError("training step failed") from inner
    except RuntimeError as outer:
        assert translate_oom(outer) is not None
    assert translate_oom(ValueError("bad value")) is None
    assert translate_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
