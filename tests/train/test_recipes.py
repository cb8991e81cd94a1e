"""Recipes: packaged ones load, flags override, unknown keys and bad values are named."""

from __future__ import annotations

import re

import pytest
import yaml

from adapterhub.errors import RecipeError
from adapterhub.recipes import Recipe, load_recipe, recipe_from_dict, recipes_dir, resolve_recipe


@pytest.mark.parametrize("task", ["sentiment", "pos", "langid", "mlm"])
def test_packaged_recipes_load(task):
    assert (recipes_dir() / f"{task}.yaml").is_file()
    recipe = load_recipe(task)
    assert recipe.task == task


def test_flags_override_and_none_keeps_the_recipe():
    recipe = resolve_recipe("sentiment", lang="fr", max_steps=12, learning_rate=None)
    packaged = load_recipe("sentiment")
    assert recipe.lang == "fr" and recipe.max_steps == 12
    assert recipe.learning_rate == packaged.learning_rate


def test_resolved_recipe_round_trips_through_yaml():
    recipe = resolve_recipe("pos", seed=9)
    assert recipe_from_dict(yaml.safe_load(recipe.to_yaml())) == recipe


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"epocs": 2}, "unknown key 'epocs' (did you mean 'epochs'?)"),
        ({"method": "adapterfusion"}, "unknown method 'adapterfusion'"),
        ({"freeze": "none"}, "needs method: none"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"learning_rate": 3}, "learning_rate"),
    ],
)
def test_bad_recipes_are_named(data, words):
    with pytest.raises(RecipeError, match=re.escape(words)):
        recipe_from_dict(data)


def test_missing_recipe_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(broken)


def test_comma_separated_languages_become_lists():
    assert Recipe(train_langs="en, fr").train_langs == ["en", "fr"]
