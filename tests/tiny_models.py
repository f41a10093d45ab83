"""Small random models for fast tests of the real trainers.

Importable as `tiny_models` from any test (pytest puts `tests/` on sys.path, as for
`dataset_files`).
"""

from __future__ import annotations

from pathlib import Path


def make_tiny_llama(dest: Path, base_model_dir: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A random Llama built from a config with SmolLM2's tokenizer: fast training runs that
    exercise the real trainers (not the model's quality)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(dest), safe_serialization=True)
    tokenizer.save_pretrained(str(dest))
    return dest
