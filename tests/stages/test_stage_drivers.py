"""What the stage drivers decide themselves (run names, default stores, the LATEST pointer, which
trainer runs, which recipe file), with the heavy work they hand to pipeline/ replaced by a recorder."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.paths import latest_store, store_dir


class Recorder:
    def __init__(self, result):
        self.calls, self.result = [], result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


SUMMARY = {"map": 0.5, "mauc": 0.7, "dprime": 0.8, "accuracy": 0.25}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_student_without_a_store_is_the_no_kd_student_named_after_its_model(folder, monkeypatch, capsys):
    from stages import student

    trained = Recorder(SUMMARY)
    monkeypatch.setattr(student, "train_student", trained)
    assert student.main(["--dataset", "d", "--model", "efficientnet_tiny"]) == 0
    (dataset, config, run), options = trained.calls[0]
    assert (dataset, run, config.kd, config.logits) == ("d", "efficientnet_tiny", "none", "")
    assert options == {"fold": None, "resume": False}
    assert "-> runs/d/efficientnet_tiny/" in capsys.readouterr().out


def test_student_defaults_to_the_latest_store_and_names_the_run_by_kd_mode(folder, monkeypatch, capsys):
    from pipeline.paths import write_latest_store
    from stages import student

    (folder / "t.zarr").mkdir()
    write_latest_store("d", folder / "t.zarr")
    trained = Recorder(SUMMARY)
    monkeypatch.setattr(student, "train_student", trained)
    assert student.main(["--dataset", "d", "--model", "efficientnet_tiny", "--fold", "2", "--resume"]) == 0
    (_, config, run), options = trained.calls[0]
    assert (run, config.kd, config.logits, config.fold) == (
        "efficientnet_tiny-kd-clean",
        "clean",
        str(folder / "t.zarr"),
        2,
    )
    assert options == {"fold": 2, "resume": True}
    assert student.main(["--dataset", "d", "--model", "efficientnet_tiny", "--kd", "replay", "--run", "mine"]) == 0
    (_, config, run), _ = trained.calls[1]
    assert (run, config.kd) == ("mine", "replay")


def test_student_on_a_non_zero_rank_reports_nothing(folder, monkeypatch, capsys):
    from stages import student

    monkeypatch.setattr(student, "train_student", Recorder({}))
    assert student.main(["--dataset", "d", "--model", "efficientnet_tiny"]) == 0
    assert "eval mAP" not in capsys.readouterr().out


@pytest.mark.parametrize("crossfit", [0, 3])
def test_teacher_runs_the_cross_fitting_trainer_only_when_asked(folder, monkeypatch, crossfit):
    import pipeline.training.crossfit
    from stages import teacher

    plain, crossed = Recorder(SUMMARY), Recorder(SUMMARY)
    monkeypatch.setattr(teacher, "run_training", plain)
    monkeypatch.setattr(pipeline.training.crossfit, "run_crossfit", crossed)
    args = ["--dataset", "d", "--model", "efficientnet_tiny", "--fold", "1"]
    assert teacher.main(args + (["--crossfit", str(crossfit)] if crossfit else [])) == 0
    used, unused = (crossed, plain) if crossfit else (plain, crossed)
    assert len(used.calls) == 1 and not unused.calls
    (dataset, config, run), options = used.calls[0]
    assert (dataset, run, config.fold) == ("d", "efficientnet_tiny", 1)
    assert options == ({"k": 3, "fold": 1, "resume": False} if crossfit else {"fold": 1, "resume": False})


def test_teacher_logits_names_the_store_after_the_run_and_points_latest_at_it(folder, monkeypatch, capsys):
    from stages import teacher_logits

    run = folder / "runs" / "d" / "ast" / "fold1"
    run.mkdir(parents=True)
    jobs = Recorder(
        {"clips": 4, "computed_clips": 4, "failures": 0, "seconds": 1.0, "engine": "inline", "cross_fitted": False}
    )
    monkeypatch.setattr(teacher_logits, "run_stage_one", jobs)
    monkeypatch.setattr(teacher_logits, "latest_run", lambda dataset: str(run))
    assert teacher_logits.main(["--dataset", "d", "--views", "2"]) == 0
    (job,), _ = jobs.calls[0]
    assert (job.teacher, job.out, job.views) == (str(run), str(Path("stores/d/ast-fold1.zarr")), 2)
    assert job.augment is None  # no ARGS: the views use the recipe's augmentation inside stage one
    (folder / job.out).mkdir(parents=True)
    assert latest_store("d") == job.out and (store_dir("d") / "LATEST").exists()


def test_store_names_for_runs_and_for_checkpoints_elsewhere(folder):
    from stages.teacher_logits import store_name

    assert store_name("runs/d/ast/fold1", "d") == "ast-fold1"
    assert store_name("runs/d/cnn", "d") == "cnn"
    assert store_name("/models/audioset_10_10_0.4593.pth", "d") == "audioset_10_10_0.4593"
    assert store_name("runs/other/cnn", "d") == "cnn"  # another dataset's run: only its folder name


def test_the_recipe_file_follows_the_dataset_name(folder):
    from stages.common import default_recipe

    (folder / "configs").mkdir()
    for name in ("esc50", "audioset_balanced", "fsd50k"):
        (folder / "configs" / f"{name}.yaml").write_text("epochs: 1\n")
    assert default_recipe("fsd50k") == str(Path("configs/fsd50k.yaml"))
    assert default_recipe("esc50_small") == str(Path("configs/esc50.yaml"))  # the name before "_"
    assert default_recipe("audioset_full") == str(Path("configs/audioset_balanced.yaml"))
    assert default_recipe("mydata") is None


def test_inspect_without_a_store_says_how_to_give_one(folder, capsys):
    from stages import inspect_store

    with pytest.raises(SystemExit) as stopped:
        inspect_store.main(["--dataset", "d"])
    assert stopped.value.code == 2 and "LOGITS=<path.zarr>" in capsys.readouterr().err


def test_families_refuses_a_vocabulary_without_class_groups_and_runs_the_equal_no_kd_cells(project, monkeypatch):
    """`make families` is the embedded corpus's check: a real vocabulary has no class groups (refused
    before any training); on the corpus it runs exactly the grid's equal-design no-KD cells."""
    from pipeline.manifests import load_manifest
    from stages import families

    with pytest.raises(SystemExit, match="not the embedded corpus"):
        families.main(["--dataset", "tiny"])
    manifest = load_manifest("data_manifests/tiny")
    grids = Recorder({"equal/cnn": {}, "equal/ast": {}})
    monkeypatch.setattr(families, "run_grid", grids)
    monkeypatch.setattr(families, "class_groups", lambda mids: {"local": list(range(len(manifest.mids)))})
    assert families.main(["--dataset", "tiny", "--seeds", "2"]) == 0
    (spec, _), _ = grids.calls[0]
    assert spec.designs == ("equal",) and spec.only == ("equal/cnn", "equal/ast") and spec.seeds == 2
    assert (project / "reports" / "tiny" / "families.md").exists()
