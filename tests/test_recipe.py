"""Recipes with per-family and teacher sections resolve to one flat Config per run."""

import pytest

from pipeline.recipe import Recipe, load_config, model_family

RECIPE = """
model: efficientnet_tiny
lr: 2.0e-3
epochs: 6
batch_size: 16
cnn:
  pooling: attention
ast:
  lr: 5.0e-4
  batch_size: 8
teacher:
  epochs: 18
  patience: 3
  ast:
    epochs: 24
"""


@pytest.fixture
def recipe_path(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


def test_each_family_gets_its_own_section(recipe_path):
    recipe = Recipe.load(recipe_path)
    cnn = recipe.resolve("student", ["model=efficientnet_tiny"])
    ast = recipe.resolve("student", ["model=ast_micro"])
    assert (cnn.lr, cnn.batch_size, cnn.pooling) == (2e-3, 16, "attention")
    assert (ast.lr, ast.batch_size, ast.pooling) == (5e-4, 8, "mean")  # the CNN's head key stays at its default
    assert cnn.epochs == ast.epochs == 6  # students: the base budget


def test_teachers_get_the_teacher_budget_and_its_family_part(recipe_path):
    recipe = Recipe.load(recipe_path)
    cnn = recipe.resolve("teacher", ["model=efficientnet_tiny"])
    ast = recipe.resolve("teacher", ["model=ast_micro"])
    assert (cnn.epochs, cnn.patience) == (18, 3)
    assert (ast.epochs, ast.patience, ast.lr) == (24, 3, 5e-4)


def test_overrides_win_over_every_section(recipe_path):
    config = load_config(recipe_path, ["model=ast_micro", "epochs=2", "lr=1e-2"], role="teacher")
    assert (config.epochs, config.lr, config.batch_size) == (2, 1e-2, 8)


def test_a_typo_inside_a_section_names_the_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ast:\n  learning_rate: 1e-3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: ast: unknown config key 'learning_rate'"):
        Recipe.load(path)


def test_unknown_or_misplaced_sections_are_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("transformer:\n  lr: 1e-3\n")
    with pytest.raises(ValueError, match="section 'transformer' is not allowed"):
        Recipe.load(path)
    path.write_text("cnn:\n  teacher:\n    epochs: 3\n")  # teacher parts live under teacher:, not the reverse
    with pytest.raises(ValueError, match="section 'teacher' is not allowed"):
        Recipe.load(path)


def test_registry_families():
    assert model_family("efficientnet_b2") == "cnn"
    assert model_family("ast_base") == "ast"


def test_shipped_recipes_give_each_family_its_own_learning_rate():
    for name in ("fsd50k", "audioset_balanced", "esc50"):
        recipe = Recipe.load(f"configs/{name}.yaml")
        cnn = recipe.resolve("teacher", ["model=efficientnet_b2"])
        ast = recipe.resolve("teacher", ["model=ast_base"])
        assert cnn.lr != ast.lr, name
        assert cnn.kd_loss == "auto", name  # the label type decides (bce multi-label, kl single-label)
