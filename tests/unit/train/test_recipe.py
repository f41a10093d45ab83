"""Recipes: YAML + key=value overrides -> a typed Recipe; mistakes name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.errors import ConfigError
from ct_llm.train.recipe import Recipe, load_recipe


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_loads_file_and_applies_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "learning_rate: 1.0e-4\nmax_steps: 5\nlora: {r: 8, alpha: 16}\n")
    recipe = load_recipe(path, ["max_steps=9", "beta=0.3", "lora.r=4"])
    assert recipe.max_steps == 9
    assert recipe.beta == pytest.approx(0.3)
    assert recipe.learning_rate == pytest.approx(1e-4)
    # A nested override changes one field and keeps its siblings from the file.
    assert (recipe.lora.r, recipe.lora.alpha) == (4, 16)


def test_override_list_value(tmp_path: Path) -> None:
    recipe = load_recipe(_write(tmp_path, "{}"), ["lora.target_modules=[q_proj, v_proj]"])
    assert recipe.lora.target_modules == ["q_proj", "v_proj"]


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "learning_rat: 1.0e-4\n")
    with pytest.raises(ConfigError, match="learning_rat") as info:
        load_recipe(path)
    assert str(path) in str(info.value)


def test_unknown_nested_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lora.rank"):
        load_recipe(_write(tmp_path, "{}"), ["lora.rank=4"])


def test_wrong_type_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        load_recipe(_write(tmp_path, "{}"), ["max_steps=many"])


def test_out_of_range_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="beta"):
        load_recipe(_write(tmp_path, "{}"), ["beta=-1"])


def test_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method"):
        load_recipe(_write(tmp_path, "method: ppo\n"))


def test_override_without_equals_sign(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe(_write(tmp_path, "{}"), ["max_steps"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(_write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(_write(tmp_path, "- 1\n- 2\n"))


def test_replay_needs_sft_term_or_kl_anchors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sft_weight"):
        load_recipe(_write(tmp_path, "replay_prompts: x.jsonl\nsft_weight: 0\n"))
    kl = load_recipe(_write(tmp_path, "replay_prompts: x.jsonl\nsft_weight: 0\nanchor_loss: kl\n"))
    assert kl.anchor_loss == "kl"
    with pytest.raises(ConfigError, match="shared_prompt"):
        load_recipe(_write(tmp_path, "anchor_loss: kl\ndpo_engine: trl\n"))


def test_every_field_is_documented() -> None:
    # The docstring under each field is the user's documentation (STYLE.md habit 3).
    import ast
    import inspect

    import ct_llm.train.recipe as mod

    tree = ast.parse(inspect.getsource(mod))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in ("Recipe", "LoraSettings"):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), (
                        f"{node.name}.{stmt.target.id} has no docstring"  # type: ignore[union-attr]
                    )
    assert Recipe().method == "auto"
