"""What a run records as it trains: TensorBoard event files (read back with tensorboard's own reader) and train.log."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.training import run_training, tracking
from pipeline.training.runlog import LOG_FILE, run_log
from tests.helpers.tiny_project import tiny_config

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(run: Path) -> dict[str, list]:
    """Every scalar series of a run's event files, by tag, read by tensorboard (not by our code)."""
    accumulator = event_accumulator.EventAccumulator(str(run / tracking.EVENTS_DIR), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}


def test_a_training_run_writes_step_and_epoch_scalars_that_tensorboard_reads(project):
    summary = run_training("tiny", tiny_config(epochs=2, batch_size=8), "tb", progress=False)
    run = Path("runs/tiny/tb")
    series = scalars(run)
    assert {
        "step/loss",
        "step/task_loss",
        "step/lr",
        "epoch/train_loss",
        "epoch/lr",
        "epoch/epoch",
        "val/map",
        "val/accuracy",
    } <= set(series)
    assert "step/kd_loss" not in series and "epoch/kd_loss" not in series  # supervised: no KD term to show
    train_clips, batch = summary["train_clips"], 8
    sizes = [min(batch, train_clips - start) for start in range(0, train_clips, batch)]
    steps = [event.step for event in series["step/loss"]]
    assert steps == list(range(1, 2 * len(sizes) + 1))  # every optimiser step of both epochs, once
    metrics = pd.read_csv(run / "metrics.csv")
    epoch_ends = [event.step for event in series["epoch/epoch"]]
    assert [event.value for event in series["epoch/epoch"]] == [1.0, 2.0] and epoch_ends == [len(sizes), 2 * len(sizes)]
    for epoch in (1, 2):
        losses = [event.value for event in series["step/loss"]][(epoch - 1) * len(sizes) : epoch * len(sizes)]
        row = metrics[metrics["epoch"] == epoch].iloc[0]
        # the epoch's loss in metrics.csv is the clip-weighted mean of its steps' losses
        assert np.average(losses, weights=sizes) == pytest.approx(row["train_loss"], rel=1e-5)
        assert series["val/map"][epoch - 1].value == pytest.approx(row["val_map"], rel=1e-5)
        assert series["epoch/lr"][epoch - 1].value == pytest.approx(row["lr"], rel=1e-6)


def test_without_tensorboard_a_run_still_trains_and_says_so_once(project, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` now fails as if not installed
    monkeypatch.setattr(tracking, "_noted_missing", False)
    summary = run_training("tiny", tiny_config(epochs=1), "no_tb", progress=False)
    assert 0.0 < summary["map"] <= 1.0
    assert not Path("runs/tiny/no_tb", tracking.EVENTS_DIR).exists()
    tracking.open_tracker(Path("runs/tiny/other"), enabled=True, kd=False)  # a second run in the same process
    assert capsys.readouterr().out.count(tracking.MISSING_NOTE) == 1


def test_a_standalone_run_writes_train_log_with_one_line_per_progress_bar(project, capsys):
    run_training("tiny", tiny_config(epochs=2), "logged", progress=True)
    shown = capsys.readouterr()
    log = Path("runs/tiny/logged", LOG_FILE).read_text()
    assert "epoch 1: loss" in log and "epoch 2: loss" in log and "finished runs/tiny/logged" in log
    assert "\r" not in log  # the bar's redraws collapse to its final state
    assert sum("epoch 1/2" in line and "clip/s" in line for line in log.splitlines()) == 1
    assert "epoch 2: loss" in shown.out  # the terminal still gets everything


def test_output_already_going_to_the_log_is_not_copied_twice(tmp_path, monkeypatch):
    """A grid's run (pipeline.experiments.parallel_runs) points its stdout at train.log itself."""
    log = tmp_path / LOG_FILE
    with open(log, "a", buffering=1) as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)  # as the spawned run's process has it
        with run_log(tmp_path):
            print("one line")
        monkeypatch.undo()
    assert log.read_text() == "one line\n"
    with run_log(tmp_path), run_log(tmp_path / "nested"):  # a nested run's block adds no second copy
        print("two")
    assert log.read_text() == "one line\ntwo\n" and not (tmp_path / "nested" / LOG_FILE).exists()
