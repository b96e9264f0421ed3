"""Stage two: joining manifests and stores, replay consistency, worker start methods, refusals."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.checkpoints import model_from_checkpoint
from pipeline.config import apply_overrides
from pipeline.manifests import load_manifest
from pipeline.manifests.vocabulary import VocabularyMismatch, class_map_for
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.stage_two.run import DistillError, attach_store, train_student
from pipeline.store import StoreError
from pipeline.training import run_training
from pipeline.training.dataset import ClipDataset
from tests.helpers import REPO_ROOT
from tests.helpers.checkpoints import Hostile, hostile_checkpoint
from tests.helpers.tiny_project import run_killed_after_epoch, tiny_config


def kd_config(store, **kw):
    return apply_overrides(tiny_config(mixup=0.5, freqm=4, timem=8, **kw), [f"logits={store}", "kd=replay"])


def test_replay_feeds_the_student_exactly_what_the_teacher_saw(store):
    config = kd_config(store)
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    kd, coverage, _ = attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end())
    assert coverage.with_logits == coverage.train_clips == len(train)
    dataset = ClipDataset(manifest, train, config.front_end(), seed=0, kd=kd)
    teacher, _, _ = model_from_checkpoint("runs/tiny/teacher")
    for epoch in (1, 2):
        dataset.set_epoch(epoch)
        item = dataset[4]
        with torch.no_grad():
            recomputed = teacher(item["features"][None])[0]
        assert torch.allclose(recomputed, item["teacher_logits"], atol=1e-4)  # same input, same logits
        assert float(item["kd_mask"]) == 1.0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataloader_workers_under_fork_and_spawn(store, method):
    config = kd_config(store)
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    kd, _, _ = attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end(), num_workers=2)
    dataset = ClipDataset(manifest, train, config.front_end(), seed=0, kd=kd)
    dataset.set_epoch(1)
    loader = DataLoader(dataset, batch_size=6, num_workers=2, multiprocessing_context=method)
    batches = list(loader)
    inline = [dataset[i]["teacher_logits"] for i in range(len(train))]
    assert torch.equal(torch.cat([b["teacher_logits"] for b in batches]), torch.stack(inline))


def test_vocabulary_mismatch_is_refused_or_remapped(project):
    manifest = load_manifest("data_manifests/tiny")
    assert class_map_for(manifest.mids, manifest, False, "s") is None
    shuffled = manifest.mids[::-1]
    with pytest.raises(VocabularyMismatch, match="another order"):
        class_map_for(shuffled, manifest, False, "s")
    assert list(class_map_for(shuffled, manifest, True, "s")) == [3, 2, 1, 0]
    with pytest.raises(VocabularyMismatch, match="absent"):
        class_map_for(manifest.mids[:3] + ["/x/other"], manifest, True, "s")


def test_front_end_mismatch_is_refused_for_replay(store):
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    config = kd_config(store, n_mels=40)
    with pytest.raises(DistillError, match="front end"):
        attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end())
    clean = apply_overrides(config, ["kd=clean"])
    _, _, notes = attach_store(clean, manifest, Path("data_manifests/tiny"), train, clean.front_end())
    assert any("front end differs" in n for n in notes)


def test_missing_logits_error_lists_clips_and_mask_trains_them_without_kd(store, tmp_path):
    from pipeline.testing import write_tiny_dataset

    # a larger manifest of the same name: the store lacks the new clips
    write_tiny_dataset(Path("."), "tiny", n_train=36, n_eval=8)  # c032-c035 are new
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    config = apply_overrides(kd_config(store), ["kd=clean"])
    with pytest.raises(DistillError, match="train clips have no valid teacher logits"):
        attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end())
    masked = apply_overrides(config, ["missing=mask"])
    kd, coverage, notes = attach_store(masked, manifest, Path("data_manifests/tiny"), train, masked.front_end())
    assert coverage.missing == ["c032", "c033", "c034", "c035"] and coverage.with_logits == 32
    dataset = ClipDataset(manifest, train, masked.front_end(), kd=kd)
    masks = [float(dataset[i]["kd_mask"]) for i in range(len(train))]
    assert sum(masks) <= 32 and all(masks[i] == 0 for i in range(len(train)) if train[i].clip_id in coverage.missing)
    assert any("another copy of the manifest" in n for n in notes)


def test_label_free_clips_train_on_kd_alone(tmp_path, monkeypatch):
    from pipeline.testing import write_tiny_dataset

    write_tiny_dataset(tmp_path, "tiny", unlabelled=6)
    monkeypatch.chdir(tmp_path)
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    run_stage_one(StageOneJob("tiny", "runs/tiny/teacher", "stores/u.zarr", scheduler="inline"), progress=False)
    config = apply_overrides(tiny_config(epochs=1), ["logits=stores/u.zarr", "kd=clean"])
    manifest = load_manifest("data_manifests/tiny")
    train = manifest.select("train")
    kd, coverage, _ = attach_store(config, manifest, Path("data_manifests/tiny"), train, config.front_end())
    assert coverage.unlabelled == 6 and coverage.with_logits == len(train)
    dataset = ClipDataset(manifest, train, config.front_end(), kd=kd)
    unlabelled = [i for i, c in enumerate(train) if not c.labels]
    assert all(float(dataset[i]["label_mask"]) == 0 and float(dataset[i]["kd_mask"]) == 1 for i in unlabelled)
    summary = train_student("tiny", config, "student", progress=False)
    assert summary["coverage"] == 1.0


def test_student_runs_in_each_mode_and_resumes(store):
    for mode in ("clean", "replay"):
        config = apply_overrides(kd_config(store), [f"kd={mode}"])
        summary = train_student("tiny", config, f"student-{mode}", progress=False)
        assert summary["kd"] == mode and 0 < summary["map"] <= 1
    online = apply_overrides(tiny_config(epochs=1), ["kd=online", "teacher=runs/tiny/teacher"])
    assert train_student("tiny", online, "student-online", progress=False)["kd"] == "online"


def test_a_killed_student_resumes_to_the_same_weights(store):
    from pipeline.checkpoints import load_checkpoint

    config = apply_overrides(kd_config(store, epochs=3), ["kd=replay"])
    train_student("tiny", config, "whole", progress=False)
    result = run_killed_after_epoch(
        "from pathlib import Path\nfrom tests.stage_two.test_distill import kd_config\nfrom pipeline.config import apply_overrides\n"
        "from pipeline.stage_two.run import train_student\n"
        f"train_student('tiny', apply_overrides(kd_config({store!r}, epochs=3), ['kd=replay']), 'killed',"
        " progress=False)\n",
        1,
    )
    assert result.returncode == -9, result.stderr[-2000:]
    train_student("tiny", config, "killed", resume=True, progress=False)
    whole = load_checkpoint("runs/tiny/whole/checkpoints/final.pt")["model"]
    resumed = load_checkpoint("runs/tiny/killed/checkpoints/final.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_what_make_student_reads_from_logits_and_kd(tmp_path):
    from pipeline.stage_two.run import choose_kd_source

    stores = tmp_path / "stores"
    assert choose_kd_source(None, None, "demo", stores) == ("none", "")  # no store yet: the no-KD student
    (stores / "demo").mkdir(parents=True)
    (tmp_path / "t.zarr").mkdir()
    (stores / "demo" / "LATEST").write_text(str(tmp_path / "t.zarr"))
    assert choose_kd_source(None, None, "demo", stores) == ("clean", str(tmp_path / "t.zarr"))
    assert choose_kd_source("none", None, "demo", stores) == ("none", "")
    assert choose_kd_source("None", "replay", "demo", stores) == ("none", "")
    assert choose_kd_source(None, "none", "demo", stores) == ("none", "")
    assert choose_kd_source("x.zarr", "none", "demo", stores) == ("none", "")
    assert choose_kd_source(None, "online", "demo", stores) == ("online", "")
    assert choose_kd_source("x.zarr", "replay", "demo", stores) == ("replay", "x.zarr")


def test_logits_none_gives_the_no_kd_student_of_the_same_recipe(store):
    from stages import student

    assert (
        student.main(
            [
                "--dataset",
                "tiny",
                "--logits",
                "none",
                "--run",
                "nokd",
                "--",
                "model=efficientnet_tiny",
                "n_mels=32",
                "target_length=64",
                "epochs=1",
                "batch_size=8",
                "threads=1",
                "norm_mean=-6",
                "norm_std=4",
            ]
        )
        == 0
    )
    summary = json.loads(Path("runs/tiny/nokd/summary.json").read_text())
    assert "kd" not in summary and "logits" not in summary
    config = Path("runs/tiny/nokd/config.yaml").read_text()
    assert "kd: none" in config and "logits: ''" in config


def test_explicit_kd_loss_against_the_label_type_warns(store, capsys):
    from pipeline.config import apply_overrides
    from pipeline.stage_two.run import train_student

    config = apply_overrides(tiny_config(epochs=1), {"kd": "clean", "logits": str(store), "kd_loss": "kl"})
    summary = train_student("tiny", config, "kl-student", progress=False)
    out = capsys.readouterr().out
    assert "warning: kd_loss=kl (softmax targets) on multi-label data" in out
    assert "was trained with sigmoid outputs" in out
    assert summary["kd_loss"] == "kl"


@pytest.mark.security
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
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""},
    )
    assert out.returncode == 1 and "integrity problem" in out.stdout, out.stderr  # the edit is reported
    assert not marker.exists()
