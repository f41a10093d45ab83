"""Every recipe shipped in recipes/ loads: a broken recipe fails here, not an hour into training."""

from __future__ import annotations

from pathlib import Path

import pytest

from ct_llm.config import REPO_ROOT
from ct_llm.train.recipe import load_recipe
from ct_llm.train.replay import load_replay_prompts

ACCELERATE_DIR = REPO_ROOT / "recipes" / "accelerate"
RECIPE_FILES = sorted(
    p for p in (REPO_ROOT / "recipes").glob("**/*.yaml") if ACCELERATE_DIR not in p.parents
)
ACCELERATE_FILES = sorted(ACCELERATE_DIR.glob("*.yaml"))


def test_default_recipe_is_shipped() -> None:
    assert REPO_ROOT / "recipes" / "smollm2-135m" / "dpo_cpu.yaml" in RECIPE_FILES


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_recipe_loads(path: Path) -> None:
    recipe = load_recipe(path)
    # The serving side refuses adapters above --max-lora-rank (16 by default).
    assert recipe.lora.r <= 16
    # The header comment is the exact command that runs the recipe.
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ct-llm train --recipe recipes/")
    assert str(path.relative_to(REPO_ROOT)) in first
    if recipe.replay_prompts:
        assert load_replay_prompts(recipe.replay_prompts)


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_config_loads(path: Path) -> None:
    """The multi-GPU launch configs parse as accelerate's own config files."""
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.distributed_type.value in ("FSDP", "DEEPSPEED")
    assert config.mixed_precision == "bf16"


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "recipes" / "replay").glob("*.jsonl")))
def test_replay_prompts_are_never_eval_questions(path: Path) -> None:
    # Replay anchors train on the starting model's own answers: a replayed eval question would
    # let the adapter keep that case by rote and hide a general regression from the gate.
    from ct_llm.evals.suite import SUITES_DIR, load_suites

    suites_dir = REPO_ROOT / SUITES_DIR
    asked = {
        _normalized(case.question)
        for file in suites_dir.glob("**/*.yaml")
        if "policies" not in file.relative_to(suites_dir).parts
        for suite in load_suites([str(file)])
        for case in suite.cases
    }
    replayed = [_normalized(m[-1]["content"]) for m in load_replay_prompts(str(path))]
    assert asked and replayed
    assert sorted(set(replayed) & asked) == []
