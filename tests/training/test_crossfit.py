import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.config import apply_overrides
from pipeline.manifests import Clip, load_manifest
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.stage_two.run import train_student
from pipeline.training.crossfit import partition, run_crossfit
from tests.helpers.tiny_project import tiny_config


def test_partition_covers_every_clip_exactly_once():
    clips = [Clip(f"c{i}", "", ("x",)) for i in range(23)]
    shares = partition(clips, 4, seed=1)
    flat = [cid for share in shares for cid in share]
    assert sorted(flat) == sorted(c.clip_id for c in clips) and len(flat) == len(set(flat))
    assert {len(s) for s in shares} <= {5, 6}
    assert shares == partition(clips, 4, seed=1) and shares != partition(clips, 4, seed=2)
    with pytest.raises(ValueError):
        partition(clips, 1, seed=0)


def test_cross_fitted_store_labels_each_clip_with_the_teacher_that_held_it_out(project):
    summary = run_crossfit("tiny", tiny_config(epochs=1), "xfit", k=3, progress=False)
    assert summary["cross_fitted"] == 3 and 0 <= summary["out_of_fold"]["map"] <= 1
    members = [json.loads(Path(f"runs/tiny/xfit/member{i}/summary.json").read_text()) for i in range(3)]
    for index, value in enumerate(summary["per_class_ap"]):  # the report's per-group figures read these
        scored = [m["per_class_ap"][index] for m in members if m["per_class_ap"][index] is not None]
        assert value == (pytest.approx(np.mean(scored)) if scored else None)
    assert summary["epochs_trained"] == "/".join(str(m["epochs_trained"]) for m in members)
    info = json.loads(Path("runs/tiny/xfit/crossfit.json").read_text())
    run_stage_one(StageOneJob("tiny", "runs/tiny/xfit", "stores/x.zarr", views=1, scheduler="inline"), progress=False)
    group = zarr.open_group("stores/x.zarr", mode="r")
    clip_ids = list(group["clip_id"][:])
    teacher_index = group["teacher_index"][:]
    manifest = load_manifest("data_manifests/tiny")
    train_ids = {c.clip_id for c in manifest.select("train")}
    for member, entry in enumerate(info["members"]):
        member_config = Path("runs/tiny/xfit") / entry["run_dir"] / "summary.json"
        assert member_config.exists()
        trained_on = train_ids - set(entry["held_out"])
        labelled_by_member = {cid for cid, t in zip(clip_ids, teacher_index) if t == member}
        assert labelled_by_member == set(entry["held_out"])
        assert not labelled_by_member & trained_on  # no teacher labels a clip it trained on
    assert all(t == -1 for cid, t in zip(clip_ids, teacher_index) if cid not in train_ids)  # mean of teachers
    from pipeline.store import inspect

    assert "out-of-fold mAP" in inspect("stores/x.zarr")
    teacher = group.attrs["teacher"]
    assert teacher["cross_fitted"] and len(teacher["checkpoint_sha256"]) == 3
    # stage two reads it like any other store
    config = apply_overrides(tiny_config(epochs=1), ["kd=clean", "logits=stores/x.zarr"])
    result = train_student("tiny", config, "student", progress=False)
    assert result["coverage"] == 1.0
