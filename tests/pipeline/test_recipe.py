"""TOML recipes: the shipped ones load and validate; bad ones fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepcompress.errors import ConfigError
from deepcompress.pipeline import validate
from deepcompress.pipeline.recipe import default_recipe, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    validate(recipe.stages, has_data=True)
    assert recipe.stages[-1].TYPE == "encode"


def test_shipped_recipes_exist():
    names = {p.name for p in RECIPES.glob("*.toml")}
    assert {"lenet300_paper.toml", "lenet5_paper.toml"} <= names


def test_default_graph_from_flags():
    with_data = default_recipe(has_data=True)
    assert [s.TYPE for s in with_data.stages] == ["prune", "retrain", "quantize", "finetune", "encode"]
    data_free = default_recipe(has_data=False)
    assert [s.TYPE for s in data_free.stages] == ["prune", "quantize", "encode"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("[[stage]\n", "not valid TOML"),
        ("seed = 1\n", "at least one"),
        ("colour = 'red'\n[[stage]]\ntype='encode'\n", "unknown top-level key"),
        ("[[stage]]\ntype='prune'\nsparsity=2\n", "stage 1"),
    ],
)
def test_bad_recipes(tmp_path, text, match):
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_recipe(path)
