"""Every driver: an expected error is one `error:` line naming the file, row, field or key, exit
code 2, no traceback; CMKD_DEBUG=1 adds the traceback."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.checkpoints import not_checkpoints
from tests.helpers.drivers import assert_one_line_error, run

CASES = {
    "teacher bad ARGS": (
        ("stages.teacher", "--dataset", "tiny", "--", "batch_size=-4", "epochs=0"),
        ("batch_size=-4", "epochs=0"),
    ),
    "teacher unknown key": (("stages.teacher", "--dataset", "tiny", "--", "lrr=1"), ("lrr",)),
    "teacher missing manifest": (("stages.teacher", "--dataset", "nothere"), ("nothere",)),
    "teacher-logits no teacher": (
        ("stages.teacher_logits", "--dataset", "tiny", "--teacher", "runs/none"),
        ("runs/none",),
    ),
    "student missing store": (
        ("stages.student", "--dataset", "tiny", "--logits", "stores/none.zarr"),
        ("stores/none.zarr",),
    ),
    "evaluate missing checkpoint": (("stages.evaluate", "--dataset", "tiny", "--checkpoint", "x.pt"), ("x.pt",)),
    "inspect not a store": (("stages.inspect_store", "--store", "audio"), ("audio",)),
    "manifests bad root": (
        ("stages.manifests", "--dataset", "d", "--format", "fsd50k", "--data-root", "nowhere"),
        ("nowhere",),
    ),
    "norm-stats missing manifest": (("stages.norm_stats", "--dataset", "nothere"), ("nothere",)),
    "pack missing manifest": (("stages.pack", "--dataset", "nothere"), ("nothere",)),
    "cmkd bad ARGS": (("stages.cmkd", "--dataset", "tiny", "--", "mixup=2"), ("mixup=2",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_expected_errors_are_one_line_and_exit_2(project, case, capsys, monkeypatch):
    """In this process, through the same run_main the `python -m stages.<driver>` line calls."""
    import importlib

    from stages.common import run_main

    monkeypatch.delenv("CMKD_DEBUG", raising=False)
    module, *argv = CASES[case][0]
    with pytest.raises(SystemExit) as caught:
        run_main(importlib.import_module(module).main, argv)
    err = capsys.readouterr().err
    result = subprocess.CompletedProcess(module, caught.value.code, "", err)
    assert_one_line_error(result, *CASES[case][1])


def test_the_module_entry_point_goes_through_run_main(project):
    assert_one_line_error(run(project, "stages.teacher", "--dataset", "tiny", "--", "epochs=0"), "epochs=0")


def test_debug_shows_the_traceback(project):
    result = run(project, "stages.evaluate", "--dataset", "tiny", "--checkpoint", "x.pt", debug=True)
    assert result.returncode == 2 and "Traceback" in result.stderr and "error: x.pt" in result.stderr


def test_unwritable_output_is_one_line_naming_the_path(project, capsys):
    from stages import teacher
    from stages.common import run_main

    (project / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(SystemExit) as caught:
        run_main(
            teacher.main,
            ["--dataset", "tiny", "--", "model=efficientnet_tiny", "n_mels=32", "target_length=64", "epochs=1"],
        )
    result = subprocess.CompletedProcess("teacher", caught.value.code, "", capsys.readouterr().err)
    assert_one_line_error(result, "runs")


def test_a_dataset_without_statistics_is_refused_in_one_line(project, capsys):
    # no norm_mean/norm_std in the recipe and none in dataset.json: not AudioSet's numbers in silence
    import json

    from stages import teacher
    from stages.common import run_main

    info_path = project / "data_manifests" / "tiny" / "dataset.json"
    info = json.loads(info_path.read_text())
    info.pop("norm_stats")
    info_path.write_text(json.dumps(info))
    with pytest.raises(SystemExit) as caught:
        run_main(
            teacher.main,
            ["--dataset", "tiny", "--", "model=efficientnet_tiny", "n_mels=32", "target_length=64", "epochs=1"],
        )
    result = subprocess.CompletedProcess("teacher", caught.value.code, "", capsys.readouterr().err)
    assert_one_line_error(result, "dataset 'tiny'", "make norm-stats DATASET=tiny")
    assert not (project / "runs" / "tiny").exists() or not any((project / "runs" / "tiny").rglob("*.pt"))


def test_a_long_problem_list_keeps_one_error_line_and_lists_the_rest(project):
    from pipeline.manifests import ManifestError
    from stages.common import error_line

    line, rest = error_line(ManifestError("dev.csv", [f"dev.csv row {i}: bad" for i in range(2, 40)]))
    assert "\n" not in line and line.startswith("dev.csv: 38 problem(s): dev.csv row 2: bad; dev.csv row 3")
    assert line.endswith("more lines (listed below)")
    assert rest[-1] == "... and 18 more" and "dev.csv row 21: bad" in rest


@pytest.mark.security
def test_inspect_warns_about_a_store_edited_after_writing(tmp_path, capsys):
    """B2: `make inspect` used to print "completed" for a store whose logits were changed since."""
    import zarr

    from pipeline.store import finalize_store
    from stages import inspect_store
    from tests.helpers.store import fill_store, make_store

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


@pytest.mark.security
def test_evaluate_on_an_empty_checkpoint_is_one_error_line(project):
    files = not_checkpoints(project / "offered")
    for kind in ("empty", "text"):
        path, reason = files[kind]
        line = assert_one_line_error(
            run(project, "stages.evaluate", "--dataset", "tiny", "--checkpoint", str(path)), str(path)
        )
        assert reason in line, line
