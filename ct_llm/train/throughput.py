"""Training throughput, so GPU runs of a recipe (cards, batch sizes, kernels, DPO engines) can be
compared: tokens per second and model FLOPs utilisation (MFU) added to the training logs; and
`translate_oom`, which turns an out-of-memory error into a message saying what to change.

The arithmetic is pure. `ThroughputCallback` is a transformers TrainerCallback by duck typing,
so importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from ct_llm.errors import ConfigError

# Peak dense bf16 tensor-core throughput of one GPU, TFLOP/s (fp32 accumulation, as PyTorch's bf16
# matmuls use). NVIDIA's datasheets headline the 2:4-sparse figure, twice these. Matched as whole
# words of torch.cuda.get_device_name(), case-insensitively; the first match wins, so a key that
# contains another ("H100 PCIe" and "H100") comes before it.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # SXM
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM: "NVIDIA H100 80GB HBM3"
    ("A100", 312.0),  # SXM and PCIe
    ("A10G", 125.0),  # AWS's variant of the A10; no separate figure is published, the A10's used
    ("A10", 125.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("RTX 6000 Ada", 364.0),
    ("RTX A6000", 155.0),
    ("A40", 150.0),
    ("RTX 4090", 165.0),  # fp32 accumulation (330 with fp16 accumulation, unused here)
)


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of one GPU named `device_name`; None for a GPU not in the table."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if re.search(rf"\b{re.escape(key)}\b", device_name, re.IGNORECASE):
            return tflops * 1e12
    return None


def lora_flops_per_token(
    total_params: int,
    trainable_params: int,
    n_layers: int,
    hidden: int,
    seq_len: int,
    *,
    reference_forward: bool = False,
) -> float:
    """Model FLOPs of one training token with LoRA, the MFU numerator.

    Weights: a matmul with N weights costs 2N FLOPs per token forward. Backward needs the gradient
    with respect to the activations of every layer (2N, frozen layers included, since earlier
    adapters depend on it) but weight gradients only for the trainable adapter weights (2T):
    (4 + 2T/N) * N in all, against 6N for full fine-tuning.

    Attention (no weights): the score and value matmuls cost 4 * seq_len * hidden per token and
    layer forward, three times that forward + backward: 12 * n_layers * hidden * seq_len. This is
    PaLM's MFU accounting (appendix B; Chinchilla counts attention the same way): the full
    seq_len x seq_len score matrix, though a causal kernel skips half of it, so figures stay
    comparable with published MFU. `hidden` is the query width (heads x head dim).

    Model FLOPs, not hardware FLOPs: recomputation by gradient checkpointing is not counted (it
    lowers MFU, as it should when comparing). `reference_forward` adds the DPO reference model's
    forward pass (weights and attention) when it runs with every batch (TRL's engine); ct-llm's
    shared-prompt engine computes the reference once before training, outside the timed steps.

    `total_params` counts the weights that take part in matmuls: the input embedding is a lookup,
    so leave it out unless it is tied to the output layer (`matmul_parameters` does this).
    """
    weights = 4 * total_params + 2 * trainable_params
    attention = 12 * n_layers * hidden * seq_len
    if reference_forward:
        weights += 2 * total_params
        attention += 4 * n_layers * hidden * seq_len
    return float(weights + attention)


def mfu(tokens_per_s: float, flops_per_token: float, peak: float, devices: int = 1) -> float:
    """Model FLOPs utilisation: the share of `devices` GPUs' peak (`peak` FLOP/s each) spent on
    the model's FLOPs. `tokens_per_s` counts the tokens of all devices."""
    return tokens_per_s * flops_per_token / (peak * devices)


def _numel(param: Any) -> int:
    n = param.numel()
    if n == 0 and hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3 keeps only a partition
        n = param.ds_numel
    if param.__class__.__name__ == "Params4bit":  # bitsandbytes packs two 4-bit values a byte
        n *= 2 * param.element_size()
    return int(n)


def matmul_parameters(model: Any) -> tuple[int, int]:
    """(weights in matmuls, trainable weights) of a transformers/PEFT model, as
    `lora_flops_per_token` takes them: 4-bit and ZeRO-3-partitioned weights at full count, the
    input embedding left out unless it is the (tied) output layer."""
    total = trainable = 0
    for param in model.parameters():  # a tied weight is yielded once
        n = _numel(param)
        total += n
        if param.requires_grad:
            trainable += n
    embed = model.get_input_embeddings()
    output = model.get_output_embeddings()
    if embed is not None and (output is None or output.weight is not embed.weight):
        total -= _numel(embed.weight)
    return total, trainable


class ThroughputCallback:
    """Adds `tokens_per_s` (all processes' tokens) and, where the GPU's peak is known, `mfu` to
    every training log, measured over the steps since the previous log.

    Tokens come from, in this order:
    1. `count_tokens()`, if given: tokens trained on so far, all processes together;
    2. `add_tokens(n)`, if a training step calls it (n: all processes' tokens of the step);
    3. TRL's own `num_tokens` log entry (non-padding tokens so far, gathered over processes;
       TRL's DPO, SFT and KTO trainers log it);
    4. transformers' `state.num_input_tokens_seen`, counted only when TrainingArguments has
       `include_num_input_tokens_seen` ("non_padding" reads the 2D attention mask, so it miscounts
       batches that carry a 4D mask, like the shared-prompt engine's).

    `model` is the model as it trains, adapter attached, before a distributed wrapper shards it
    (e.g. `trainer.model` right after the trainer is built). `seq_len` is the typical sequence
    length, for the attention term (the recipe's max_length is an upper bound); `add_tokens` with
    `sequences` replaces it by the measured mean. `peak`: FLOP/s of one device; by default looked
    up from the CUDA device's name, and no `mfu` on CPU or an unknown GPU.

    Logs reach `state.log_history` before callbacks run (Trainer.log appends a copy, then calls
    on_log), so this adds its keys to both: the last history entry, and the `logs` dict that the
    callbacks after this one see. An interval's time includes whatever ran in it, checkpoint
    saving too: compare runs with the same `save_steps`.
    """

    def __init__(
        self,
        model: Any,
        seq_len: int,
        count_tokens: Callable[[], float] | None = None,
        *,
        peak: float | None = None,
        reference_forward: bool = False,
    ) -> None:
        config = getattr(model, "config", None)
        self.total_params, self.trainable_params = matmul_parameters(model)
        self.n_layers = int(getattr(config, "num_hidden_layers", 0) or 0)
        self.hidden = int(getattr(config, "hidden_size", 0) or 0)
        self.seq_len = seq_len
        self.reference_forward = reference_forward
        self.peak = peak
        self.devices = 1
        self.intervals: list[dict[str, float]] = []
        """One entry per log: step, tokens, seconds, tokens_per_s (and mfu)."""
        self._count_tokens = count_tokens
        self._reported = 0.0
        self._sequences = 0
        self._last_tokens = 0.0
        self._last_time: float | None = None

    def add_tokens(self, n: float, sequences: int = 0) -> None:
        """Report `n` tokens trained on (all processes), in `sequences` sequences if known."""
        self._reported += n
        self._sequences += sequences

    def flops_per_token(self, seq_len: float | None = None) -> float:
        return lora_flops_per_token(
            self.total_params,
            self.trainable_params,
            self.n_layers,
            self.hidden,
            round(seq_len or self.seq_len),
            reference_forward=self.reference_forward,
        )

    def summary(self) -> dict[str, float]:
        """Throughput of the run: all intervals after the first (which holds the warm-up), or the
        only one. Empty if nothing was measured."""
        steady = self.intervals[1:] or self.intervals
        seconds = sum(i["seconds"] for i in steady)
        if not steady or seconds <= 0:
            return {}
        tokens = sum(i["tokens"] for i in steady)
        out = {"tokens_per_s": round(tokens / seconds, 1)}
        if all("mfu" in i for i in steady):
            flops = sum(i["mfu"] * i["seconds"] for i in steady)
            out["mfu"] = round(flops / seconds, 6)
        return out

    # --- TrainerCallback events ---

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.devices = max(1, int(getattr(args, "world_size", 1) or 1))
        device = getattr(args, "device", None)
        if self.peak is None and getattr(device, "type", None) == "cuda":
            import torch

            self.peak = peak_flops(torch.cuda.get_device_name(device))
        self._last_tokens = self._tokens_so_far(state, {}) or 0.0
        self._sequences = 0
        self._last_time = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs is None or self._last_time is None:
            return
        tokens = self._tokens_so_far(state, logs)
        now = time.perf_counter()
        if tokens is None or tokens <= self._last_tokens or now <= self._last_time:
            return  # an eval log, or the end-of-training summary: no new training tokens
        new, seconds = tokens - self._last_tokens, now - self._last_time
        seq_len = new / self._sequences if self._sequences else None
        added = {"tokens_per_s": round(new / seconds, 1)}
        if self.peak:
            ratio = mfu(new / seconds, self.flops_per_token(seq_len), self.peak, self.devices)
            added["mfu"] = round(ratio, 6)  # small models on big GPUs: well under 1%
        self.intervals.append(
            {"step": state.global_step, "tokens": new, "seconds": seconds, **added}
        )
        logs.update(added)
        history = getattr(state, "log_history", None)
        if history and history[-1].get("step") == state.global_step:
            history[-1].update(added)
        self._last_tokens, self._last_time, self._sequences = tokens, now, 0

    def __getattr__(self, name: str) -> Any:
        # The Trainer calls every event on every callback; the others are no-ops, as in
        # transformers' TrainerCallback (not subclassed, to keep this module free of torch).
        if name.startswith("on_"):
            return _ignore
        raise AttributeError(name)

    def _tokens_so_far(self, state: Any, logs: dict[str, Any]) -> float | None:
        if self._count_tokens is not None:
            return float(self._count_tokens())
        if self._reported:
            return self._reported
        if "num_tokens" in logs:
            return float(logs["num_tokens"])
        seen = getattr(state, "num_input_tokens_seen", 0)
        return float(seen) if seen else None


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


_OOM_MARKERS = ("out of memory", "not enough memory", "cublas_status_alloc_failed")


def translate_oom(exc: BaseException, recipe: Any = None) -> ConfigError | None:
    """A ConfigError saying which recipe settings to change, for an out-of-memory error raised by
    training (CUDA's OutOfMemoryError, a RuntimeError about memory, or Python's MemoryError, also
    as the cause of another error); None for any other error. `recipe` (a Recipe) lets the
    message give the current values and skip what is already set."""
    oom = _find_oom(exc)
    if oom is None:
        return None
    text = str(oom).strip().splitlines()[0] if str(oom).strip() else type(oom).__name__
    low = text.lower()
    cpu = isinstance(oom, MemoryError) or ("cpu" in low and "cuda" not in low and "gpu" not in low)
    where = "the machine's memory (RAM)" if cpu else "GPU memory"

    fixes = []
    if recipe is None:
        fixes += [
            "lower per_device_train_batch_size and raise gradient_accumulation_steps by the same "
            "factor (the batch per optimizer step stays)",
            "lower max_length",
        ]
    else:
        per_device, accumulation = (
            recipe.per_device_train_batch_size,
            recipe.gradient_accumulation_steps,
        )
        if per_device > 1:  # the same batch per optimizer step, in smaller passes
            smaller = per_device // 2 if per_device % 2 == 0 else 1
            fixes.append(
                f"fewer pairs per pass, more passes per step (now {per_device} x {accumulation}; "
                f"e.g. per_device_train_batch_size={smaller} "
                f"gradient_accumulation_steps={accumulation * per_device // smaller})"
            )
        fixes.append(f"shorter examples (e.g. max_length={max(16, recipe.max_length // 2)})")
    if recipe is None or not recipe.gradient_checkpointing:
        fixes.append("gradient_checkpointing=true (~30% slower)")
    if not cpu and (recipe is None or not recipe.qlora):
        fixes.append("qlora=true (4-bit base weights, CUDA only)")
    if cpu:
        fixes.append("else a machine with more memory")
    else:
        fixes.append("else a GPU with more memory, or several (recipes/README.md)")
    return ConfigError(
        f"training ran out of {where} ({text[:200]}); to fit, as recipe settings or key=value "
        "overrides: " + "; ".join(fixes)
    )


def _find_oom(exc: BaseException) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or type(current).__name__ == "OutOfMemoryError":
            return current
        if isinstance(current, RuntimeError) and any(
            marker in str(current).lower() for marker in _OOM_MARKERS
        ):
            return current
        current = current.__cause__ or current.__context__
    return None
