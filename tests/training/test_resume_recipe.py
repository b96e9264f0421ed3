"""RESUME compares the recipe with the checkpoint's: any change but the documented ones is refused,
listing every difference, and the run's files keep claiming the recipe they were trained with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.checkpoints import load_checkpoint
from pipeline.config import Config, config_to_dict
from pipeline.models.checkpoint_import import UnsafeCheckpoint
from pipeline.training import run_training
from pipeline.training.resume import RESUMABLE_CHANGES, ResumeMismatch, recipe_differences
from tests.helpers.checkpoints import Hostile
from tests.helpers.tiny_project import tiny_config


@pytest.fixture
def interrupted(project):
    """A 2-epoch run whose process died after its last checkpoint (no final.pt, no summary yet)."""
    run_training("tiny", tiny_config(epochs=2), "r", progress=False)
    Path("runs/tiny/r/summary.json").unlink()
    Path("runs/tiny/r/checkpoints/final.pt").unlink()
    return Path("runs/tiny/r")


def test_changed_recipe_is_refused_listing_every_difference(interrupted):
    config_before = (interrupted / "config.yaml").read_bytes()
    last_before = (interrupted / "checkpoints/last.pt").read_bytes()
    with pytest.raises(ResumeMismatch) as caught:
        run_training("tiny", tiny_config(epochs=2, lr=5e-4, n_mels=40, batch_size=4), "r", resume=True, progress=False)
    message = str(caught.value)
    assert "last.pt" in message and "\n" not in message
    for line in ("lr: run has 0.001, now 0.0005", "n_mels: run has 32, now 40", "batch_size: run has 8, now 4"):
        assert line in message
    assert "front end n_mels" in message  # the features change with it
    assert (interrupted / "config.yaml").read_bytes() == config_before
    assert (interrupted / "checkpoints/last.pt").read_bytes() == last_before
    assert not (interrupted / "checkpoints/final.pt").exists()


def test_more_epochs_is_the_documented_change_that_resumes(interrupted):
    run_training("tiny", tiny_config(epochs=3, num_workers=0, threads=1), "r", resume=True, progress=False)
    assert load_checkpoint(interrupted / "checkpoints/final.pt")["epoch"] == 3
    assert len((interrupted / "metrics.csv").read_text().strip().splitlines()) == 1 + 3
    assert "epochs: 3" in (interrupted / "config.yaml").read_text()


def test_fewer_epochs_than_trained_is_refused(interrupted):
    with pytest.raises(ResumeMismatch, match="already trained 2, now 1"):
        run_training("tiny", tiny_config(epochs=1), "r", resume=True, progress=False)


def test_changed_norm_stats_are_a_front_end_difference(interrupted):
    with pytest.raises(ResumeMismatch, match="front end norm_mean"):
        run_training("tiny", tiny_config(epochs=2, norm_mean=-5.0), "r", resume=True, progress=False)


def test_keys_a_checkpoint_predates_count_as_their_defaults():
    defaults = config_to_dict(Config())
    saved = {k: v for k, v in defaults.items() if k != "tau"}
    assert recipe_differences(saved, defaults, defaults) == []
    assert recipe_differences(saved, {**defaults, "tau": 2.0}, defaults) == ["tau: run has 1.0, now 2.0"]
    assert recipe_differences({"betas": [0.9, 0.99]}, {"betas": (0.9, 0.99)}) == []
    assert set(RESUMABLE_CHANGES) >= {"epochs"}


@pytest.mark.security
def test_hostile_resume_state_is_refused(project):
    run_training("tiny", tiny_config(epochs=1), "r", progress=False)
    marker = project / "marker"
    last = Path("runs/tiny/r/checkpoints/last.pt")
    state = torch.load(last, weights_only=True)
    state["payload"] = Hostile(marker)
    torch.save(state, last)
    Path("runs/tiny/r/summary.json").unlink()  # as if killed before the end
    with pytest.raises(UnsafeCheckpoint, match="last.pt"):
        run_training("tiny", tiny_config(epochs=2), "r", resume=True, progress=False)
    assert not marker.exists()
