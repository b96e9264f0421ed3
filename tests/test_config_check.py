"""Every config key is type- and range-checked, all problems in one message."""

import dataclasses

import pytest

from pipeline.config import Config, apply_overrides
from pipeline.config_check import ConfigError, check_config, config_problems
from tests.helpers import REPO_ROOT


def test_defaults_and_the_shipped_recipes_pass():

    from pipeline.recipe import load_config

    assert config_problems(Config()) == []
    for recipe in sorted(REPO_ROOT.glob("configs/*.yaml")):
        assert config_problems(load_config(recipe)) == [], recipe.name


def test_out_of_range_values_are_listed_together():
    config = apply_overrides(
        Config(),
        ["batch_size=-4", "epochs=0", "mixup=2", "lr=0", "kd=offline", "model=resnet", "betas=0.9,1.5", "device=tpu"],
    )
    with pytest.raises(ConfigError) as caught:
        check_config(config, source="configs/demo.yaml with ARGS")
    message = str(caught.value)
    assert message.startswith("configs/demo.yaml with ARGS: 8 bad key(s): ")
    for part in (
        "batch_size=-4 must be > 0",
        "epochs=0 must be > 0",
        "mixup=2.0 must be in [0, 1]",
        "lr=0.0 must be > 0",
        "kd='offline' must be one of",
        "model='resnet' must be a registered model",
        "betas=(0.9, 1.5) must be two numbers",
        "device='tpu' must be",
    ):
        assert part in message
    assert "\n" not in message


def test_wrong_types_set_in_code_are_caught():
    config = dataclasses.replace(Config(), epochs=2.5, amp="yes", lr=float("nan"), fold=True, tau="1")
    problems = " ".join(config_problems(config))
    for part in (
        "epochs=2.5 must be an integer",
        "amp='yes' must be true or false",
        "lr=nan must be finite",
        "fold=True must be an integer",
        "tau='1' must be a number",
    ):
        assert part in problems


def test_weight_averaging_window_must_be_ordered():
    with pytest.raises(ConfigError, match="wa_end=2 must be >= wa_start=4"):
        check_config(dataclasses.replace(Config(), wa_start=4, wa_end=2))


def test_driver_refuses_bad_args_before_any_work(project, capsys):
    from stages import teacher
    from stages.common import run_main

    with pytest.raises(SystemExit) as caught:
        run_main(teacher.main, ["--dataset", "tiny", "--", "batch_size=-4", "mixup=2"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "batch_size=-4" in err and "mixup=2.0" in err
    assert "Traceback" not in err
    assert not (project / "runs").exists()
