"""Small random models for fast tests of the real trainers.

Importable as `tiny_models` from any test (pytest puts `tests/` on sys.path, as for
`dataset_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_llama(
    vocab: int, hidden: int = 32, layers: int = 2, tie: bool = True, **config: Any
) -> Any:
    """A random Llama (seeded) of the given size, built from a config: no download."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=tie,
            **config,
        )
    )


def make_tiny_llama(dest: Path, base_model_dir: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A random Llama with SmolLM2's tokenizer, saved as a model folder: fast training runs that
    exercise the real trainers (not the model's quality)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    model = tiny_llama(
        len(tokenizer),
        hidden,
        layers,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.save_pretrained(str(dest), safe_serialization=True)
    tokenizer.save_pretrained(str(dest))
    return dest


FEEDBACK_TENANT = "bench"  # the tenant of ct_llm.bench.feedback_data's synthetic feedback


def curated_workspace(root: Path, base_model_dir: Path, hidden: int = 32, layers: int = 2) -> Any:
    """A workspace whose base model is a tiny Llama, with 600 synthetic feedback events curated
    into a dataset version (tenant `bench`): what `ct-llm train` needs, in seconds."""
    from ct_llm.bench.feedback_data import load_into
    from ct_llm.curate.dataset import curate_dataset
    from ct_llm.workspace import Workspace

    ws = Workspace.init(root)
    make_tiny_llama(ws.base_model_dir, base_model_dir, hidden, layers)
    load_into(ws.database_url, 600, seed=9)
    curate_dataset(ws, FEEDBACK_TENANT)
    return ws
