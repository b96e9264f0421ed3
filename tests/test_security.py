"""Received files never run code: hostile pickles offered everywhere a file is read, and checkpoint
metadata (model_name, model_config, crossfit members) validated against the registry before use."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.checkpoints import load_checkpoint, model_from_checkpoint, save_checkpoint
from pipeline.models import create_model
from pipeline.models.checkpoint_import import CONVERT_COMMAND, CheckpointImportError, UnsafeCheckpoint
from pipeline.models.registry import validate_model_config
from pipeline.store import StoreError
from pipeline.training import run_training

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


class Hostile:
    """Unpickling this creates the marker file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_checkpoint(path: Path, marker: Path, wrap_model: bool = True) -> Path:
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    state = (
        {
            "model": model.state_dict(),
            "model_name": "efficientnet_tiny",
            "model_config": model.model_config,
            "payload": Hostile(marker),
        }
        if wrap_model
        else {**model.state_dict(), "payload": Hostile(marker)}
    )
    torch.save(state, path)
    return path


def test_hostile_pickle_really_would_create_the_marker(tmp_path):
    """The control: a full unpickle of the same file does run its code."""
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_hostile_published_checkpoint_is_refused_with_the_conversion(tmp_path):
    marker = tmp_path / "marker"
    path = hostile_checkpoint(tmp_path / "published.pt", marker, wrap_model=False)
    with pytest.raises(UnsafeCheckpoint) as caught:
        create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64, checkpoint=path)
    message = str(caught.value)
    assert str(path) in message and "convert" in message and "\n" not in message
    assert not marker.exists()


def test_documented_conversion_makes_a_trusted_legacy_file_loadable(tmp_path):
    marker = tmp_path / "marker"
    legacy = hostile_checkpoint(tmp_path / "legacy.pt", marker, wrap_model=False)
    command = CONVERT_COMMAND.replace("TRUSTED.pt", str(legacy)).replace("OUT.pt", str(tmp_path / "safe.pt"))
    assert command.startswith("python -c ")
    subprocess.run([sys.executable, "-c", command.split('"')[1], str(legacy), str(tmp_path / "safe.pt")], check=True)
    assert marker.exists()  # the user trusted it, so the full load ran once, by their hand
    marker.unlink()
    model = create_model(
        "efficientnet_tiny", num_classes=4, n_mels=32, target_length=64, checkpoint=tmp_path / "safe.pt"
    )
    assert model.import_report.loaded
    assert not marker.exists()


def test_hostile_own_checkpoint_and_run_dir_are_refused(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    hostile_checkpoint(run / "final.pt", marker)
    for offered in (run / "final.pt", tmp_path / "run"):
        with pytest.raises(UnsafeCheckpoint, match="final.pt"):
            model_from_checkpoint(offered)
    assert not marker.exists()


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


@pytest.mark.parametrize(
    "name, config, problem",
    [
        ("efficientnet_tiny", {"num_classes": 4, "pretrained": "imagenet"}, "unknown key"),
        ("efficientnet_tiny", {"num_classes": 4, "checkpoint": "/tmp/x.pt"}, "unknown key"),
        ("efficientnet_tiny", {"num_classes": [4]}, "non-plain"),
        ("efficientnet_tiny", {"num_classes": {"__class__": "os.system"}}, "non-plain"),
        ("os.system", {}, "unknown model"),
        (["efficientnet_tiny"], {}, "must be a string"),
        ("efficientnet_tiny", "num_classes=4", "must be a mapping"),
    ],
)
def test_model_metadata_is_checked_against_the_registry(name, config, problem):
    with pytest.raises(ValueError, match=problem):
        validate_model_config(name, config, source="x.pt")


def test_registry_accepts_what_create_model_records():
    for name in ("efficientnet_tiny", "ast_micro"):
        model = create_model(name, num_classes=3, n_mels=32, target_length=64)
        assert validate_model_config(model.model_name, model.model_config) == (name, model.model_config)


def test_crossfit_members_cannot_point_outside_the_run(tmp_path):
    from pipeline.stage_one.teachers import load_teacher_set

    run = tmp_path / "cf"
    run.mkdir()
    for name in ("../elsewhere", "/etc", "a/../../b", ".."):
        (run / "crossfit.json").write_text(json.dumps({"members": [{"run_dir": name, "held_out": []}]}))
        with pytest.raises(ValueError, match="must be the name of a folder inside"):
            load_teacher_set(run)


@pytest.fixture
def teacher_store(project):
    from pipeline.stage_one import StageOneJob, run_stage_one

    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    run_stage_one(
        StageOneJob("tiny", "runs/tiny/teacher", "stores/s.zarr", scheduler="inline", chunk_clips=8), progress=False
    )
    return "stores/s.zarr"


def test_store_attrs_pointing_at_hostile_files_are_never_loaded(project, teacher_store):
    """Store attrs are JSON: a pickle payload or a path to a hostile checkpoint in them is only text."""
    import zarr

    from pipeline.config import apply_overrides
    from pipeline.manifests import load_manifest
    from pipeline.stage_two.run import attach_store

    marker = project / "marker"
    hostile = hostile_checkpoint(project / "evil.pt", marker)
    group = zarr.open_group(teacher_store, mode="r+", zarr_format=3)
    teacher = dict(group.attrs["teacher"])
    teacher.update(
        run=str(hostile),
        pickled=pickle.dumps(Hostile(marker)).hex(),
        members=[{**teacher["members"][0], "checkpoint": str(hostile), "model_config": {"checkpoint": str(hostile)}}],
    )
    group.attrs["teacher"] = teacher
    manifest = load_manifest("data_manifests/tiny")
    # edited attrs no longer match the store digest: a verified read refuses the store ...
    config = apply_overrides(tiny_config(), [f"logits={teacher_store}", "kd=clean"])
    with pytest.raises(StoreError, match="digest"):
        attach_store(config, manifest, Path("data_manifests/tiny"), manifest.select("train"), config.front_end())
    # ... and an unverified one reads the attrs as the text they are
    config = apply_overrides(config, ["verify=false"])
    attach_store(config, manifest, Path("data_manifests/tiny"), manifest.select("train"), config.front_end())
    out = subprocess.run(
        [sys.executable, "-m", "stages.inspect_store", "--store", teacher_store],
        capture_output=True,
        text=True,
        cwd=project,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert out.returncode == 1 and "integrity problem" in out.stdout, out.stderr  # the edit is reported
    assert not marker.exists()


def test_efficientat_style_pickled_index_is_never_unpickled(project, teacher_store):
    """EfficientAT ships logits as .npy plus a pickled filename->row map. This project imports neither
    format: offered where a store or a checkpoint is expected, or planted in the shared logit cache
    that DataLoader workers map, the pickle is refused and never runs."""
    from pipeline.store import LogitTable, StoreError

    marker = project / "marker"
    index = project / "index.pkl"
    index.write_bytes(pickle.dumps({"a.wav": 0, "payload": Hostile(marker)}))
    with pytest.raises(StoreError, match="no Zarr store here"):
        LogitTable.open(index)
    with pytest.raises(CheckpointImportError):
        load_checkpoint(index)
    cache = project / "cache"
    shared = LogitTable.open(teacher_store).share(cache)
    planted = Path(next(iter(shared._shared.values())))
    np.save(planted, np.array([Hostile(marker)], dtype=object), allow_pickle=True)
    try:  # the cache re-checks its files: a planted one is refused or replaced, never unpickled
        again = LogitTable.open(teacher_store).share(cache)
    except ValueError as error:
        assert "pickle" in str(error) or "Python objects" in str(error)
    else:
        rows = np.arange(len(again))
        np.testing.assert_array_equal(again.logits_for(rows), LogitTable.open(teacher_store).logits_for(rows))
    assert not marker.exists()


def test_inspect_warns_about_a_store_edited_after_writing(tmp_path, capsys):
    """B2: `make inspect` used to print "completed" for a store whose logits were changed since."""
    import zarr

    from pipeline.store import finalize_store
    from stages import inspect_store

    from .store_helpers import fill_store, make_store

    path = make_store(tmp_path / "s.zarr", n=10)
    fill_store(path)
    finalize_store(path, {"clips": 10})
    assert inspect_store.main(["--dataset", "none", "--store", str(path)]) == 0
    assert "verified: every chunk re-hashed" in capsys.readouterr().out
    group = zarr.open_group(str(path), mode="r+")
    group["logits"][5] = group["logits"][5] + 1  # someone "fixed" a row by hand
    assert inspect_store.main(["--dataset", "none", "--store", str(path)]) == 1
    out = capsys.readouterr().out
    assert "verification FAILED" in out and "WARNING: 1 integrity problem(s)" in out and "chunk 1" in out


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


def _not_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files offered as checkpoints that are none: the reason each must get."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": (folder / "empty.pt", "not a checkpoint: empty"),
        "random": (folder / "random.pt", "not a PyTorch file"),
        "text": (folder / "notes.pt", "not a PyTorch file: it is text"),
        "npy": (folder / "array.pt", "not a PyTorch file: a NumPy"),
        "foreign zip": (folder / "other.pt", "not a PyTorch file: a zip archive without"),
        "truncated": (folder / "half.pt", "not a PyTorch file: a broken or truncated zip"),
    }
    files["empty"][0].write_bytes(b"")
    files["random"][0].write_bytes(bytes([0x13]) + np.random.default_rng(0).bytes(499))
    files["text"][0].write_text("model weights are on the release page\n")
    np.save(folder / "array.npy", np.zeros(3))
    (folder / "array.npy").rename(files["npy"][0])
    with zipfile.ZipFile(files["foreign zip"][0], "w") as archive:
        archive.writestr("readme.txt", "not torch")
    model = create_model("efficientnet_tiny", num_classes=4, n_mels=32, target_length=64)
    torch.save({"model": model.state_dict()}, folder / "whole.pt")
    whole = (folder / "whole.pt").read_bytes()
    files["truncated"][0].write_bytes(whole[: len(whole) // 2])
    return files


def test_files_that_are_no_checkpoint_get_a_true_reason_never_unpickling_advice(tmp_path):
    """An empty, text, random, NumPy, foreign-zip or truncated file is named for what it is; before,
    the empty file raised IndexError inside the error handler and the others were told to unpickle."""
    for kind, (path, reason) in _not_checkpoints(tmp_path).items():
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


def test_evaluate_on_an_empty_checkpoint_is_one_error_line(project):
    from .test_drivers import assert_one_line_error, run

    files = _not_checkpoints(project / "offered")
    for kind in ("empty", "text"):
        path, reason = files[kind]
        line = assert_one_line_error(
            run(project, "stages.evaluate", "--dataset", "tiny", "--checkpoint", str(path)), str(path)
        )
        assert reason in line, line


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
