"""What a finished run leaves for its reader: predictions, per-class AP, plots, provenance, a final line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import apply_overrides
from pipeline.manifests import load_manifest
from pipeline.metrics import evaluate_predictions
from pipeline.training import run_training
from pipeline.training.outputs import plot_per_class_ap, provenance, read_predictions, store_identity
from pipeline.training.runlog import score_axis
from tests.helpers.store import fill_store, make_store
from tests.helpers.tiny_project import tiny_config


@pytest.fixture
def finished(project, capsys):
    summary = run_training("tiny", tiny_config(batch_size=4), "out", progress=True)  # 6 batches an epoch
    captured = capsys.readouterr()
    return summary, Path("runs/tiny/out"), captured.out, captured.err


def eval_targets(manifest, clip_ids):
    by_id = {c.clip_id: c for c in manifest.clips}
    return np.array([[float(mid in by_id[i].labels) for mid in manifest.mids] for i in clip_ids])


def test_eval_predictions_reproduce_the_reported_map(finished):
    summary, run, _, _ = finished
    manifest = load_manifest("data_manifests/tiny")
    predictions = read_predictions(run / "eval_predictions.parquet")
    eval_ids = [c.clip_id for c in manifest.select("eval") if c.labels]
    assert list(predictions.index) == eval_ids and list(predictions.columns) == manifest.mids
    rescored = evaluate_predictions(predictions.to_numpy(), eval_targets(manifest, eval_ids), single_label=False)
    assert rescored["map"] == pytest.approx(summary["map"], abs=1e-4)


def test_per_class_ap_table_and_plots(finished):
    summary, run, _, _ = finished
    manifest = load_manifest("data_manifests/tiny")
    table = pd.read_csv(run / "per_class_ap.csv")
    assert list(table.columns) == ["index", "mid", "name", "positives", "ap"]
    assert list(table["mid"]) == manifest.mids and list(table["index"]) == list(range(len(manifest.mids)))
    eval_clips = [c for c in manifest.select("eval") if c.labels]
    assert list(table["positives"]) == [sum(mid in c.labels for c in eval_clips) for mid in manifest.mids]
    assert table["ap"].dropna().mean() == pytest.approx(summary["map"], abs=1e-6)
    for plot in ("training_curve.png", "per_class_ap.png"):
        assert (run / "plots" / plot).read_bytes()[:4] == b"\x89PNG"


def test_summary_records_code_packages_and_no_store_for_a_supervised_run(finished):
    _, run, _, _ = finished
    record = json.loads((run / "summary.json").read_text())["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", record["git_commit"])
    assert record["git_commit"] != "unknown"  # the tests run inside the repository's checkout
    assert torch.__version__.startswith(record["packages"]["torch"].split("+")[0])
    assert record["packages"]["pandas"] == pd.__version__ and record["packages"]["numpy"] == np.__version__
    assert "store" not in record and "teacher" not in record


def test_log_has_one_line_per_epoch_and_a_final_line_with_metrics_and_folder(finished):
    summary, run, out, err = finished
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1", "epoch 2"]
    assert lines[-1].startswith(f"finished {run}: eval mAP {summary['map']:.4f}  mAUC {summary['mauc']:.4f}")
    assert f"in {run}/" in lines[-1]
    # into a non-terminal each bar draws its start and end only (3 with clearing): 2 epoch, 2 val, 2 eval
    # bars; a redraw per batch would add 12
    assert err.count("\r") <= 3 * 6


def test_a_kd_run_records_its_store_by_path_and_content_hash(tmp_path):
    first, same, other = (
        make_store(tmp_path / "a.zarr"),
        make_store(tmp_path / "b.zarr"),
        make_store(tmp_path / "c.zarr", n=12),
    )
    for path in (first, same, other):
        fill_store(path)
    identity = store_identity(first)
    assert identity["path"] == str(first.resolve()) and re.fullmatch(r"[0-9a-f]{64}", identity["content_sha256"])
    assert store_identity(same)["content_sha256"] == identity["content_sha256"]  # same logits, same hash
    assert store_identity(other)["content_sha256"] != identity["content_sha256"]  # more clips
    config = apply_overrides(tiny_config(), [f"logits={tmp_path}/a.zarr", "kd=clean"])
    assert provenance(config)["store"] == identity
    per_fold = apply_overrides(tiny_config(fold=2), [f"logits={tmp_path}/{{fold}}.zarr", "kd=replay"])
    (tmp_path / "2.zarr").symlink_to(first)
    assert provenance(per_fold)["store"]["content_sha256"] == identity["content_sha256"]
    online = apply_overrides(tiny_config(), ["kd=online", f"teacher={tmp_path}/teacher"])
    assert provenance(online)["teacher"] == str((tmp_path / "teacher").resolve()) and "store" not in provenance(online)


def test_score_axis_follows_the_data_with_a_margin():
    assert score_axis([0.10, 0.12, 0.15]) == pytest.approx((0.09, 0.16))  # not 0-1: the climb is visible
    assert score_axis([0.2, 0.6]) == pytest.approx((0.16, 0.64))  # a tenth of the range either side
    assert score_axis([0.0, 1.0]) == pytest.approx((-0.1, 1.1))  # a score of 0 or 1 is not drawn on the frame
    assert score_axis([0.5, 0.5]) == pytest.approx((0.49, 0.51))  # a flat curve still gets a band


def test_per_class_plot_of_a_large_vocabulary(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "index": range(527),
            "mid": [f"/m/{i}" for i in range(527)],
            "name": [f"class {i}" for i in range(527)],
            "positives": rng.integers(0, 50, 527),
            "ap": np.where(np.arange(527) % 50 == 0, np.nan, rng.uniform(0, 1, 527)),
        }
    )
    plot_per_class_ap(table, tmp_path / "ap.png", title="AudioSet-size")
    assert (tmp_path / "ap.png").read_bytes()[:4] == b"\x89PNG"
    plot_per_class_ap(table.assign(ap=np.nan), tmp_path / "none.png")  # nothing scored: no plot, no error
    assert not (tmp_path / "none.png").exists()


def test_metrics_log_appends_truncates_and_reads_back(tmp_path):
    from pipeline.training.runlog import METRIC_COLUMNS, append_metrics, read_metrics, truncate_metrics

    path = tmp_path / "metrics.csv"
    for epoch in (1, 2, 3):
        append_metrics(
            path,
            {
                "epoch": epoch,
                "train_loss": 1.0 / epoch,
                "val_map": float("nan") if epoch == 2 else 0.1 * epoch,
                "seconds": 12.3456789,
                "not_a_column": "ignored",
            },
        )
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS) and len(lines) == 4
    assert lines[1].startswith("1,1,") and ",12.3457," in lines[1]  # six significant digits
    truncate_metrics(path, 2)
    rows = read_metrics(path)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[0]["val_map"] == pytest.approx(0.1) and np.isnan(rows[1]["val_map"])
    assert rows[1]["train_loss"] == pytest.approx(0.5)


def test_a_kd_run_beside_its_teacher_gets_teacher_ap_and_a_scatter(project):
    from pipeline.config import RunPaths
    from pipeline.training.evaluate import Evaluation
    from pipeline.training.outputs import teacher_per_class, write_run_outputs

    manifest = load_manifest("data_manifests/tiny")
    teacher_dir = Path("runs/tiny/teacher")
    teacher_dir.mkdir(parents=True)
    pd.DataFrame({"mid": manifest.mids[::-1], "ap": [0.9, 0.8, 0.7, 0.6]}).to_csv(teacher_dir / "per_class_ap.csv")
    clips = [c for c in manifest.select("eval") if c.labels]
    targets = eval_targets(manifest, [c.clip_id for c in clips])
    logits = targets * 2.0 + np.random.default_rng(0).normal(0, 1, targets.shape)  # a decent student
    evaluation = Evaluation(evaluate_predictions(logits, targets, False), [c.clip_id for c in clips], logits, targets)
    config = apply_overrides(tiny_config(), ["kd=online", f"teacher={teacher_dir}/checkpoints/final.pt"])
    (teacher_dir / "checkpoints").mkdir()
    (teacher_dir / "checkpoints/final.pt").write_bytes(b"not read here")
    paths = RunPaths(Path("runs/tiny/student")).make()
    summary = write_run_outputs(paths, config, manifest, evaluation, {"map": evaluation.metrics["map"]}, False)
    table = pd.read_csv(paths.root / "per_class_ap.csv")
    assert list(table["teacher_ap"]) == [0.6, 0.7, 0.8, 0.9]  # joined by mid, not by row order
    assert (paths.plots / "teacher_vs_student_ap.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["provenance"]["teacher"].endswith("checkpoints/final.pt")
    assert teacher_per_class({"store": {"teacher_run": "runs/tiny/nowhere"}}) is None  # teacher not here: no plot
