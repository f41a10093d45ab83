"""The serving plugin's grouped LoRA ops (serving/vllm-cpu-lora) against vLLM's stock torch ops,
whose semantics are restated here: gather each token's slot, then a batched einsum."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

PLUGIN = Path(__file__).parents[3] / "serving" / "vllm-cpu-lora" / "ct_llm_vllm_cpu_lora"
spec = importlib.util.spec_from_file_location("ct_llm_vllm_cpu_lora", PLUGIN / "__init__.py")
assert spec is not None and spec.loader is not None
ops = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ops)


def stock(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """vllm.lora.ops.torch_ops: `weights[indices]` (a copy per token), then einsum."""
    selected = weights[indices]
    if selected.dim() == 4:
        selected = selected.squeeze(1)
    return torch.einsum("bi, boi -> bo", inputs, selected)


def _case(tokens: int, slots: int, out: int, inp: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, inp, generator=g)
    w = torch.randn(slots, 1, out, inp, generator=g)
    w[-1] = 0  # the last slot is empty, as it is until every slot holds an adapter
    return x, w, g


@pytest.mark.parametrize("layout", ["one adapter", "mixed", "mixed with base tokens"])
def test_shrink_and_expand_match_the_stock_ops(layout: str) -> None:
    x, w, g = _case(tokens=37, slots=4, out=16, inp=64)
    idx = {
        "one adapter": torch.full((37,), 1),
        "mixed": torch.randint(0, 3, (37,), generator=g),
        "mixed with base tokens": torch.randint(-1, 3, (37,), generator=g),
    }[layout]
    # For -1 the stock ops read the last (empty) slot: zero, as the grouped ops give.
    want = stock(x, w, idx)

    y = torch.full((37, 20), 7.0)
    ops.bgmv_shrink(x, w, y, idx, scaling=0.5)
    torch.testing.assert_close(y[:, :16], 0.5 * want)
    assert torch.all(y[:, 16:] == 7.0)  # untouched past the adapter's rank

    base = torch.randn(37, 16, generator=g)
    y = base.clone()
    ops.bgmv_expand(x, w, y, idx, add_inputs=True)
    torch.testing.assert_close(y, base + want)
    ops.bgmv_expand(x, w, y, idx, add_inputs=False)
    torch.testing.assert_close(y, want)

    y = torch.zeros(37, 40)
    ops.bgmv_expand_slice(x, w, y, idx, slice_offset=8, slice_size=16, add_inputs=True)
    torch.testing.assert_close(y[:, 8:24], want)
    assert torch.all(y[:, :8] == 0) and torch.all(y[:, 24:] == 0)


def test_tokens_without_an_adapter_get_no_lora_term_even_when_every_slot_is_used() -> None:
    # Where the stock ops would add the last slot's adapter to base-model tokens.
    x, w, g = _case(tokens=6, slots=3, out=8, inp=16)
    w[-1] = torch.randn(1, 8, 16, generator=g)
    idx = torch.tensor([0, -1, 2, -1, 0, 1])
    got = ops.grouped_matmul(x, w, idx, torch.float32)
    assert torch.all(got[idx == -1] == 0)
    keep = idx >= 0
    torch.testing.assert_close(got[keep], stock(x[keep], w, idx[keep]))


def test_inputs_are_cast_to_the_output_dtype() -> None:
    x, w, _ = _case(tokens=5, slots=2, out=4, inp=8)
    got = ops.grouped_matmul(
        x.to(torch.bfloat16), w, torch.zeros(5, dtype=torch.long), torch.float32
    )
    assert got.dtype == torch.float32


def test_the_plugin_and_ct_llm_agree_on_its_names() -> None:
    from ct_llm.deploy import cpu_lora

    meta = (PLUGIN.parent / "pyproject.toml").read_text().splitlines()
    assert f'name = "{cpu_lora.PLUGIN_DIST}"' in meta
    plugins = meta.index('[project.entry-points."vllm.general_plugins"]')
    assert meta[plugins + 1] == f'{cpu_lora.PLUGIN_NAME} = "ct_llm_vllm_cpu_lora:register"'
    assert ops.INSTALLED_MESSAGE == cpu_lora.INSTALLED_MESSAGE


def test_the_probe_says_no_for_an_environment_without_the_plugin(tmp_path: Path) -> None:
    from ct_llm.deploy.cpu_lora import grouped_lora_installed

    assert not grouped_lora_installed(Path(sys.executable))  # ct-llm's own environment
    assert not grouped_lora_installed(tmp_path / "no-python")
