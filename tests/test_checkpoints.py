"""Checkpoints are read as data only (pipeline/checkpoints.py): a hostile pickle never runs, a file that is
no checkpoint is named for what it is, and the metadata a received checkpoint carries (model config,
front end, vocabulary) is checked before use."""

from __future__ import annotations

import pytest
import torch

from pipeline.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from pipeline.models import create_model
from pipeline.models.checkpoint_import import CheckpointImportError, UnsafeCheckpoint
from tests.helpers.checkpoints import hostile_checkpoint, not_checkpoints


@pytest.mark.security
def test_hostile_pickle_really_would_create_the_marker(tmp_path):
    """The control: a full unpickle of the same file does run its code."""
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.security
def test_hostile_own_checkpoint_and_run_dir_are_refused(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    hostile_checkpoint(run / "final.pt", marker)
    for offered in (run / "final.pt", tmp_path / "run"):
        with pytest.raises(UnsafeCheckpoint, match="final.pt"):
            model_from_checkpoint(offered)
    assert not marker.exists()


@pytest.mark.security
def test_model_config_naming_a_second_file_is_refused(tmp_path):
    """A weights-only-safe checkpoint whose model_config says checkpoint=<hostile file>."""
    marker = tmp_path / "marker"
    hostile = hostile_checkpoint(tmp_path / "second.pt", marker, wrap_model=False)
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_name": "efficientnet_tiny",
            "model_config": {**model.model_config, "checkpoint": str(hostile)},
        },
        tmp_path / "safe.pt",
    )
    with pytest.raises(CheckpointImportError, match="checkpoint"):
        model_from_checkpoint(tmp_path / "safe.pt")
    assert not marker.exists()


@pytest.mark.security
def test_files_that_are_no_checkpoint_get_a_true_reason_never_unpickling_advice(tmp_path):
    """An empty, text, random, NumPy, foreign-zip or truncated file is named for what it is; before,
    the empty file raised IndexError inside the error handler and the others were told to unpickle."""
    for kind, (path, reason) in not_checkpoints(tmp_path).items():
        for load in (
            model_from_checkpoint,
            lambda p: create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64, checkpoint=p),
        ):
            with pytest.raises(CheckpointImportError) as caught:
                load(path)
            message = str(caught.value)
            assert not isinstance(caught.value, UnsafeCheckpoint), kind
            assert reason in message and str(path) in message and "\n" not in message, (kind, message)
            assert "weights_only=False" not in message and "convert" not in message, kind


@pytest.mark.security
@pytest.mark.parametrize(
    "front_end, problem",
    [
        ({"norm_mean": "-4.2"}, "norm_mean='-4.2' must be a number"),
        ({"n_mels": 64.5}, "n_mels=64.5 must be an integer"),
        ({"sample_rate": 0}, "sample_rate=0 must be > 0"),
        ({"shell": "rm"}, "unknown key 'shell'"),
    ],
)
def test_a_received_front_end_is_type_checked_like_recipe_keys(tmp_path, front_end, problem):
    """A string mean in a checkpoint's front_end surfaced as a TypeError traceback mid-run."""
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    path = tmp_path / "final.pt"
    torch.save(
        {
            "model": model.state_dict(),
            "model_name": "efficientnet_tiny",
            "model_config": model.model_config,
            "front_end": {"sample_rate": 16000, "n_mels": 32, "target_length": 64, **front_end},
            "vocabulary": {"mids": ["/a", "/b", "/c", "/d"], "names": ["a", "b", "c", "d"]},
        },
        path,
    )
    with pytest.raises(ValueError, match="front_end") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


@pytest.mark.security
def test_a_junk_checkpoint_vocabulary_is_refused(tmp_path):
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    path = tmp_path / "final.pt"
    for vocabulary, problem in (
        ({"mids": ["/tmp/x"] * 4, "names": ["x"] * 4}, "lists '/tmp/x' 4 times"),
        ({"mids": ["/a", "/b"], "names": ["a", "b"]}, "2 classes but the model outputs 4"),
        ({"mids": [1, 2, 3, 4], "names": ["a"] * 4}, "non-empty list of class ids"),
    ):
        torch.save(
            {
                "model": model.state_dict(),
                "model_name": "efficientnet_tiny",
                "model_config": model.model_config,
                "vocabulary": vocabulary,
            },
            path,
        )
        with pytest.raises(CheckpointImportError, match=problem):
            load_checkpoint(path)
