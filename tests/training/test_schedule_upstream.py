"""The lr schedule, warm-up and weight averaging against the parent code bases' own definitions.

References are built here, not from this project's code: the decay from torch's own
``MultiStepLR`` with upstream's milestones ``range(lrscheduler_start, 1000, step)``, stepped at each
epoch's end (ast and psla ``src/traintest.py``); the warm-up and the averaging restated from the same
files (docs/method.md, "Schedule keys").
"""

from __future__ import annotations

import pytest
import torch

from pipeline.config import Config
from pipeline.recipe import Recipe, load_config
from pipeline.training.schedule import WeightAverager, lr_factor
from tests.helpers import REPO_ROOT

RECIPES = sorted(REPO_ROOT.glob("configs/*.yaml"))
AFTER_WARMUP = 10**9  # a global step long past any warm-up


def resolved_runs():
    """(recipe, family model, role) for every shipped recipe, each family it has, student and teacher."""
    for path in RECIPES:
        recipe = Recipe.load(path)
        for key in ("cnn_model", "ast_model"):
            model = recipe.base.get(key)
            if model:
                for role in ("student", "teacher"):
                    yield pytest.param(path, model, role, id=f"{path.stem}-{model}-{role}")


def upstream_epoch_lrs(lr: float, start: int, every: int, decay: float, epochs: int) -> list[float]:
    """The lr each epoch trains at upstream: MultiStepLR(range(start, 1000, every)), one step() per epoch end."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(range(start, 1000, every)), gamma=decay)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("path, model, role", list(resolved_runs()))
def test_every_shipped_recipe_decays_as_multisteplr(path, model, role):
    config = load_config(path, {"model": model}, role=role)
    expected = upstream_epoch_lrs(
        config.lr, config.lr_decay_start, config.lr_decay_every, config.lr_decay, config.epochs
    )
    ours = [config.lr * lr_factor(config, AFTER_WARMUP, epoch) for epoch in range(1, config.epochs + 1)]
    assert ours == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "recipe, section, first_decayed",
    [
        ("fsd50k.yaml", "cnn", 11),  # psla egs/fsd50k/run.sh lrscheduler_start=10
        ("audioset_balanced.yaml", "ast", 11),  # ast: MultiStepLR [10, 15, 20, 25]
        ("audioset_full.yaml", "ast", 3),  # ast: MultiStepLR [2, 3, 4, 5]
        ("esc50.yaml", "ast", 6),  # ast: lrscheduler_start=5, step 1, x0.85
    ],
)
def test_first_decayed_epoch_is_upstreams(recipe, section, first_decayed):
    model = "efficientnet_b2" if section == "cnn" else "ast_base"
    config = load_config(REPO_ROOT / "configs" / recipe, {"model": model})
    factors = [lr_factor(config, AFTER_WARMUP, epoch) for epoch in range(1, config.epochs + 1)]
    assert factors.index(next(f for f in factors if f < 1.0)) + 1 == first_decayed


def test_legacy_schedule_is_one_epoch_earlier():
    config = Config(lr_decay_start=3, lr_decay_every=1, lr_decay=0.5, lr_schedule="legacy")
    assert [lr_factor(config, AFTER_WARMUP, e) for e in (1, 2, 3, 4)] == [1.0, 1.0, 0.5, 0.25]
    upstream = Config(lr_decay_start=3, lr_decay_every=1, lr_decay=0.5)
    assert [lr_factor(upstream, AFTER_WARMUP, e) for e in (1, 2, 3, 4)] == [1.0, 1.0, 1.0, 0.5]


def upstream_warmup_lrs(lr: float, steps: int) -> list[float]:
    """traintest.py's warm-up: at every global step <= 1000 that is a multiple of 50 the lr is set to
    (step / 1000) * lr; between those steps it stays."""
    current, out = lr, []
    for global_step in range(steps):
        if global_step <= 1000 and global_step % 50 == 0:
            current = (global_step / 1000) * lr
        out.append(current)
    return out


def test_staircase_warmup_is_upstreams():
    config = Config(lr=5e-4, warmup_steps=1000, warmup_every=50, lr_decay_start=100)
    ours = [config.lr * lr_factor(config, step, 1) for step in range(1300)]
    assert ours == pytest.approx(upstream_warmup_lrs(5e-4, 1300), rel=1e-12, abs=1e-18)
    assert ours[:50] == [0.0] * 50  # the first 50 steps at lr 0, as upstream


@pytest.mark.parametrize("recipe", ["fsd50k.yaml", "audioset_balanced.yaml", "audioset_full.yaml"])
def test_recipes_with_warmup_use_the_staircase(recipe):
    for model in ("efficientnet_b2", "ast_base"):
        config = load_config(REPO_ROOT / "configs" / recipe, {"model": model})
        assert (config.warmup_steps, config.warmup_every) == (1000, 50)


def average_of(models: dict[int, float], first_twice: bool, start: int, end: int) -> float:
    """ast validate_wa: each of epochs start..end once; psla validate_wa: its loop starts at start
    again after loading it, so start counts twice and the sum is divided by n + 1."""
    values = [models[e] for e in range(start, end + 1)]
    if first_twice:
        values = [models[start]] + values
    return sum(values) / len(values)


@pytest.mark.parametrize("first_twice", [False, True])
def test_weight_averaging_weights_as_upstream(first_twice):
    config = Config(wa_start=2, wa_end=5, wa_first_twice=first_twice)
    values = {1: 1.0, 2: 2.0, 3: 4.0, 4: 8.0, 5: 16.0, 6: 32.0}
    model, averager = torch.nn.Linear(1, 1, bias=False), WeightAverager(config)
    for epoch, value in values.items():
        torch.nn.init.constant_(model.weight, value)
        averager.update(model, epoch)
    got = averager.averaged_state(model)["weight"].item()
    assert got == pytest.approx(average_of(values, first_twice, 2, 5), rel=1e-6)


def test_ast_full_audioset_averages_epochs_1_to_5():
    config = load_config(REPO_ROOT / "configs" / "audioset_full.yaml", {"model": "ast_base"})
    assert (config.wa_start, config.wa_end, config.wa_first_twice, config.epochs) == (1, 5, False, 5)


def test_a_run_saved_before_the_schedule_change_is_compared_in_todays_meaning():
    # its config.yaml has no lr_schedule: lr_decay_start then named the first decayed epoch, N then = N - 1 now
    from pipeline.config import config_to_dict
    from pipeline.training.resume import in_current_meaning, recipe_differences

    defaults = config_to_dict(Config())
    old_demo = {k: v for k, v in config_to_dict(Config(lr_decay_start=3)).items() if k != "lr_schedule"}
    same_schedule = config_to_dict(Config(lr_decay_start=2))  # the demo's new value: trains identically
    assert recipe_differences(in_current_meaning(old_demo), same_schedule, defaults) == []
    old_fsd = {k: v for k, v in config_to_dict(Config(lr_decay_start=10)).items() if k != "lr_schedule"}
    shifted = config_to_dict(Config(lr_decay_start=10))  # same number, now one more epoch at the full lr
    assert recipe_differences(in_current_meaning(old_fsd), shifted, defaults) == ["lr_decay_start: run has 9, now 10"]
    for start in (0, 1, 3, 10):  # the conversion is exact: the same rate in every epoch
        legacy = Config(lr_decay_start=start, lr_schedule="legacy", lr_decay_every=2)
        converted = Config(
            **{
                **config_to_dict(legacy),
                **in_current_meaning({k: v for k, v in config_to_dict(legacy).items() if k != "lr_schedule"}),
            }
        )
        assert [lr_factor(legacy, AFTER_WARMUP, e) for e in range(1, 30)] == [
            lr_factor(converted, AFTER_WARMUP, e) for e in range(1, 30)
        ]
