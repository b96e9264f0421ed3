"""Training meets bad audio and missing splits without crashing or choosing silently: a clip whose
file broke after the manifest was built is skipped with a count, and model selection never uses the
eval split unless asked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.manifests import load_manifest
from pipeline.testing import write_tiny_dataset
from pipeline.training import run_training
from pipeline.training.runner import splits_for
from tests.helpers.tiny_project import tiny_config


def test_clip_broken_after_the_manifest_is_skipped_with_a_count(project):
    manifest = load_manifest("data_manifests/tiny")
    train = splits_for(manifest, None)[0]
    broken, gone = train[2], train[5]
    manifest.audio_path(broken).write_bytes(b"RIFF garbage")  # e.g. a copy overwritten mid-run
    manifest.audio_path(gone).unlink()
    summary = run_training("tiny", tiny_config(epochs=2, mixup=0.5), "skip", progress=False)
    assert summary["skipped_clips"]["count"] == 2
    log = Path(summary["skipped_clips"]["log"]).read_text()
    assert broken.clip_id in log and gone.clip_id in log
    on_disk = json.loads(Path("runs/tiny/skip/summary.json").read_text())
    assert on_disk["skipped_clips"]["count"] == 2
    assert np.isfinite(on_disk["map"])


def test_broken_eval_clip_is_left_out_of_the_scores(project):
    manifest = load_manifest("data_manifests/tiny")
    eval_clip = manifest.select("eval")[0]
    manifest.audio_path(eval_clip).write_bytes(b"")
    summary = run_training("tiny", tiny_config(epochs=1), "e", progress=False)
    assert 0.0 <= summary["map"] <= 1.0


def test_no_val_split_carves_one_from_train_and_says_so(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path, name="folds", fold_based=True)
    monkeypatch.chdir(tmp_path)
    manifest = load_manifest("data_manifests/folds")
    train, val, evaluation = splits_for(manifest, 1, "val", seed=3)
    assert val and not {c.clip_id for c in val} & {c.clip_id for c in evaluation}
    assert not {c.clip_id for c in val} & {c.clip_id for c in train}
    assert len(train) + len(val) == len(manifest.select("train", 1))
    assert splits_for(manifest, 1, "val", seed=3)[1] == val  # drawn from the seed
    summary = run_training("folds", tiny_config(epochs=1, loss="ce"), "f", fold=1, progress=False)
    assert summary["model_selection"].startswith(f"val carved from train: {len(val)} clips")
    assert "no val split" in summary["model_selection"]


def test_selecting_on_eval_is_explicit_and_stated(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path, name="folds", fold_based=True)
    monkeypatch.chdir(tmp_path)
    manifest = load_manifest("data_manifests/folds")
    _, val, evaluation = splits_for(manifest, 1, "eval")
    assert val == evaluation
    summary = run_training("folds", tiny_config(epochs=1, loss="ce", select_on="eval"), "f", fold=1, progress=False)
    assert summary["model_selection"].startswith("eval split (select_on=eval")
    with pytest.raises(ValueError, match="select_on"):
        splits_for(manifest, 1, "test")


def test_data_with_a_val_split_selects_on_it(project):
    from pipeline.manifests import write_manifest

    manifest = load_manifest("data_manifests/tiny")
    clips = [
        c if i % 6 or c.split != "train" else dataclasses.replace(c, split="val") for i, c in enumerate(manifest.clips)
    ]
    write_manifest("data_manifests/tiny", "tiny", project, "fsd50k", manifest.labels, clips)
    _, val, _ = splits_for(load_manifest("data_manifests/tiny"), None)
    assert val and all(c.split == "val" for c in val)
    summary = run_training("tiny", tiny_config(epochs=1), "v", progress=False)
    assert summary["model_selection"] == f"val split ({len(val)} clips)"
