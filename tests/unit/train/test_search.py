"""The hyperparameter search's pure parts: what each trial tries, and which one wins."""

from __future__ import annotations

import pytest

from ct_llm.errors import ConfigError
from ct_llm.train.recipe import Recipe, SearchSettings, recipe_from_dict
from ct_llm.train.search import best_trial, sample_trials


def test_first_trial_is_the_recipe_and_the_rest_stay_in_range() -> None:
    recipe = Recipe(method="dpo", search=SearchSettings(trials=8, num_epochs=[1, 2]))
    trials = sample_trials(recipe, recipe.search)
    assert trials[0] == {} and len(trials) == 8
    for t in trials[1:]:
        assert 1e-5 <= t["learning_rate"] <= 1e-3
        assert 0.05 <= t["beta"] <= 0.5
        assert t["num_epochs"] in (1, 2)
    assert trials == sample_trials(recipe, recipe.search)  # seeded: the same trials again
    fixed_steps = recipe.model_copy(update={"max_steps": 10})
    assert all("num_epochs" not in t for t in sample_trials(fixed_steps, recipe.search))


def test_best_trial_by_accuracy_then_margin_then_earliest() -> None:
    results = [
        {"trial": 1, "heldout_accuracy": 0.7, "heldout_margin": 0.1},
        {"trial": 2, "heldout_accuracy": 0.8, "heldout_margin": 0.0},
        {"trial": 3, "heldout_accuracy": 0.8, "heldout_margin": 0.3},
        {"trial": 4, "heldout_accuracy": 0.8, "heldout_margin": 0.3},
    ]
    assert best_trial(results)["trial"] == 3


def test_search_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="search.learning_rate"):
        recipe_from_dict({"search": {"learning_rate": [1e-3, 1e-5]}}, "test")
    with pytest.raises(ConfigError, match="needs method dpo"):
        recipe_from_dict({"method": "kto", "search": {}}, "test")
