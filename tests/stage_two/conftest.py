"""Fixtures of the stage-two tests."""

from __future__ import annotations

import pytest

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.training import run_training
from tests.helpers.tiny_project import tiny_config


@pytest.fixture
def store(project):
    run_training("tiny", tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), "teacher", progress=False)
    run_stage_one(
        StageOneJob(
            "tiny", "runs/tiny/teacher", "stores/s.zarr", views=2, scheduler="inline", chunk_clips=8, dtype="float32"
        ),
        progress=False,
    )
    return "stores/s.zarr"
