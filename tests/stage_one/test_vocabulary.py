"""A stage-one teacher must speak the dataset's classes: one that shares none is refused, another
order (or a superset) needs vocab_remap; a refused run writes no store and leaves LATEST alone."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.manifests import Label, load_manifest, write_manifest
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.training import run_training
from tests.helpers import REPO_ROOT
from tests.helpers.tiny_project import tiny_config


def relabelled(project: Path, name: str, mids: list[str]) -> None:
    """The tiny dataset's audio under another vocabulary (mid i of the tiny set -> mids[i])."""
    manifest = load_manifest("data_manifests/tiny")
    rename = dict(zip(manifest.mids, mids))
    clips = [dataclasses.replace(c, labels=tuple(rename[m] for m in c.labels)) for c in manifest.clips]
    labels = sorted((Label(i, mid, mid.upper()) for i, mid in enumerate(sorted(mids))), key=lambda label: label.index)
    write_manifest(project / "data_manifests" / name, name, project, "fsd50k", labels, clips)


@pytest.fixture
def teacher(project):
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    return "runs/tiny/teacher"


def test_teacher_sharing_no_class_is_refused_and_latest_stays(teacher, project):
    relabelled(project, "other", ["/x/a", "/x/b", "/x/c", "/x/d"])
    Path("stores/other").mkdir(parents=True)
    Path("stores/other/LATEST").write_text("stores/other/earlier.zarr\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.teacher_logits",
            "--dataset",
            "other",
            "--teacher",
            teacher,
            "--out",
            "stores/other/s.zarr",
            "--scheduler",
            "inline",
        ],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "shares no class with other" in result.stderr and "Traceback" not in result.stderr
    assert not Path("stores/other/s.zarr").exists()
    assert Path("stores/other/LATEST").read_text() == "stores/other/earlier.zarr\n"


def test_reordered_vocabulary_needs_vocab_remap(teacher, project):
    tiny = load_manifest("data_manifests/tiny").mids
    relabelled(project, "reordered", tiny)  # same mids, labels.csv in sorted order
    assert load_manifest("data_manifests/reordered").mids != tiny
    job = StageOneJob("reordered", teacher, "stores/r.zarr", scheduler="inline", chunk_clips=8)
    with pytest.raises(ValueError, match="vocab_remap=true"):
        run_stage_one(job, progress=False)
    assert not Path("stores/r.zarr").exists()
    summary = run_stage_one(dataclasses.replace(job, vocab_remap=True), progress=False)
    assert summary["failures"] == 0


def test_teacher_missing_some_dataset_classes_is_refused(teacher, project):
    tiny = load_manifest("data_manifests/tiny").mids
    relabelled(project, "partial", tiny[:2] + ["/x/new1", "/x/new2"])
    with pytest.raises(ValueError, match="2 of the manifest's classes absent"):
        run_stage_one(
            StageOneJob("partial", teacher, "stores/p.zarr", scheduler="inline", vocab_remap=True), progress=False
        )


def test_teacher_of_another_dataset_on_fold_based_data_is_refused_for_its_vocabulary(teacher, project):
    """The reverse pairing (a multi-label teacher offered to an ESC-50-layout dataset): the refusal
    names the vocabulary mismatch; before, the fold check spoke first ("point TEACHER at one fold's run")."""
    from pipeline.testing import write_tiny_dataset

    folds = load_manifest(write_tiny_dataset(project, name="folds", fold_based=True))
    rename = {mid: f"/esc/{i}" for i, mid in enumerate(folds.mids)}
    clips = [dataclasses.replace(c, labels=tuple(rename[m] for m in c.labels)) for c in folds.clips]
    labels = [Label(i, rename[mid], mid.upper()) for i, mid in enumerate(folds.mids)]
    write_manifest(project / "data_manifests" / "folds", "folds", project, "esc50", labels, clips)
    with pytest.raises(ValueError, match="shares no class with folds") as caught:
        run_stage_one(StageOneJob("folds", teacher, "stores/f.zarr", scheduler="inline"), progress=False)
    assert "fold" not in str(caught.value).split("shares no class with folds")[1]
    assert not Path("stores/f.zarr").exists()
