"""The teachers stage one loads (pipeline/stage_one/teachers.py): a cross-fit teacher set names only
folders inside its run, and a received teacher's recipe is checked before it sets the views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.training import run_training
from tests.helpers.tiny_project import tiny_config


@pytest.mark.security
def test_crossfit_members_cannot_point_outside_the_run(tmp_path):
    from pipeline.stage_one.teachers import load_teacher_set

    run = tmp_path / "cf"
    run.mkdir()
    for name in ("../elsewhere", "/etc", "a/../../b", ".."):
        (run / "crossfit.json").write_text(json.dumps({"members": [{"run_dir": name, "held_out": []}]}))
        with pytest.raises(ValueError, match="must be the name of a folder inside"):
            load_teacher_set(run)


@pytest.mark.security
def test_a_teacher_recipe_with_impossible_values_is_refused_by_stage_one(project):
    """The recipe inside a received checkpoint sets the views' augmentation: it is checked first."""
    from pipeline.config_check import ConfigError
    from pipeline.stage_one import StageOneJob, run_stage_one

    run_training("tiny", tiny_config(epochs=1), "t", progress=False)
    final = Path("runs/tiny/t/checkpoints/final.pt")
    ckpt = torch.load(final, weights_only=True)
    ckpt["config"].update(mixup=5.0, freqm=-3)
    torch.save(ckpt, final)
    with pytest.raises(ConfigError, match="mixup=5.0 must be in"):
        run_stage_one(StageOneJob("tiny", "runs/tiny/t", "stores/s.zarr", scheduler="inline"), progress=False)
    assert not Path("stores/s.zarr").exists()
