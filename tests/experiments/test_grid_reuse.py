"""pipeline/experiments/grid_reuse.py: which differences between a finished run's saved recipe and today's count."""

import yaml

from pipeline.config import config_to_dict
from pipeline.experiments.grid_reuse import recipe_changes
from pipeline.recipe import load_config


def finished_run(tmp_path, name, overrides):
    run = tmp_path / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(load_config(None, overrides))))
    return run


def test_a_key_of_the_other_family_or_of_how_it_ran_is_not_a_change(tmp_path):
    cnn = finished_run(tmp_path, "cnn", ["model=efficientnet_tiny", "pooling=attention"])
    ast = finished_run(tmp_path, "ast", ["model=ast_micro", "pooling=attention"])
    new_ast_strides = ["pooling=attention", "ast_freq_stride=8", "threads=2", "num_workers=3"]
    assert recipe_changes(cnn, load_config(None, ["model=efficientnet_tiny", *new_ast_strides])) == []
    changes = recipe_changes(ast, load_config(None, ["model=ast_micro", *new_ast_strides]))
    assert [line.split(":")[0] for line in changes] == ["ast_freq_stride"]
    # the CNN head means nothing to an AST, but it is the CNN's own recipe
    assert recipe_changes(ast, load_config(None, ["model=ast_micro", "pooling=mean"])) == []
    assert [
        line.split(":")[0]
        for line in recipe_changes(cnn, load_config(None, ["model=efficientnet_tiny", "pooling=mean"]))
    ] == ["pooling"]
    assert [
        line.split(":")[0]
        for line in recipe_changes(cnn, load_config(None, ["model=efficientnet_tiny", "pooling=attention", "lr=1"]))
    ] == ["lr"]


def test_a_cross_fitted_teacher_is_compared_through_its_members(tmp_path):
    """A cross-fitted teacher has no recipe of its own, only its members': a changed lr must still
    count (else its stale out-of-fold stores would be reused)."""
    teacher = tmp_path / "ast_crossfit"
    teacher.mkdir()
    finished_run(teacher, "member0", ["model=ast_micro", "lr=1e-3"])
    assert recipe_changes(teacher, load_config(None, ["model=ast_micro", "lr=1e-3"])) == []
    assert [
        line.split(":")[0] for line in recipe_changes(teacher, load_config(None, ["model=ast_micro", "lr=2e-3"]))
    ] == ["lr"]
