"""The figures a researcher opens: what they draw is the numbers the tables print, on axes that fit."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from pipeline.experiments.grid import GridSpec
from pipeline.experiments.report import comparisons, main_table
from pipeline.experiments.report_plots import forest_figure
from pipeline.recipe import load_config
from pipeline.training.outputs import plot_teacher_vs_student
from pipeline.training.runlog import epoch_axis, run_title, square_limits

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SPEC = GridSpec(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro", seeds=3, small=True, designs=("short",))


def grid_results(seeds: int) -> dict:
    """Per-seed eval scores of every cell of SPEC's grid, as the grid's summaries hold them."""
    rng = np.random.default_rng(3)
    base = {
        "teacher/cnn": 0.60,
        "teacher/ast": 0.55,
        "short/cnn": 0.50,
        "short/ast": 0.45,
        "short/ast_to_cnn": 0.53,
        "short/cnn_to_ast": 0.47,
        "short/prior_to_cnn": 0.44,
        "short/prior_to_ast": 0.40,
    }
    return {
        cell: {s: {"map": mean + 0.01 * float(rng.standard_normal())} for s in range(seeds)}
        for cell, mean in base.items()
    }


def drawn_estimates(ax) -> list[tuple[float, float, float, float]]:
    """(mean, low, high, y) of every errorbar an axis holds (low = high = mean when it has no interval)."""
    out = []
    for container in ax.containers:
        data_line, _, bar_lines = container.lines
        mean, y = float(data_line.get_xdata()[0]), float(data_line.get_ydata()[0])
        if bar_lines:
            (low, _), (high, _) = bar_lines[0].get_segments()[0]
        else:
            low = high = mean
        out.append((mean, float(low), float(high), y))
    return out


def test_the_grid_figure_draws_the_tables_paired_intervals_around_a_zero_line():
    results = grid_results(3)
    rows = comparisons(SPEC, results, "map")
    fig = forest_figure(SPEC, rows, "mAP")
    ax = fig.axes[0]
    drawn = drawn_estimates(ax)
    expected = [(p["mean"], p["low"], p["high"]) for r in rows for p in (r.over_baseline, r.over_prior) if p]
    assert len(drawn) == len(expected) == 6  # 2 pairs x (over no-KD, over prior) + 2 prior controls x (over no-KD)
    assert np.allclose(sorted(d[:3] for d in drawn), sorted(expected))
    table = "\n".join(main_table(SPEC, results, "map"))
    for mean, low, high, _ in drawn:  # the same numbers the report's table prints
        assert f"[{low:+.4f}, {high:+.4f}]" in table and f"{mean:+.4f}" in table
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the zero line
    labels = {tick.get_text(): tick.get_color() for tick in ax.get_yticklabels()}
    assert labels["prior -> cnn (control)"] != labels["ast -> cnn (clean)"]  # controls set apart
    xmin, xmax = ax.get_xlim()
    assert xmin < min(d[1] for d in drawn) and xmax > max(d[2] for d in drawn) and xmin < 0 < xmax
    plt.close(fig)


def test_a_one_seed_grid_figure_draws_points_without_intervals():
    results = {cell: {0: runs[0]} for cell, runs in grid_results(1).items()}
    spec = GridSpec(**{**SPEC.__dict__, "seeds": 1})
    fig = forest_figure(spec, comparisons(spec, results, "map"), "mAP")
    drawn = drawn_estimates(fig.axes[0])
    assert drawn and all(low == mean == high for mean, low, high, _ in drawn)
    assert "no interval" in fig.axes[0].get_title()
    plt.close(fig)


def test_the_teacher_vs_student_scatter_fits_its_data(tmp_path, monkeypatch):
    table = pd.DataFrame({"ap": [0.05, 0.21, 0.38, math.nan], "teacher_ap": [0.10, 0.18, 0.33, 0.2]})
    low, high = square_limits([0.05, 0.21, 0.38, 0.10, 0.18, 0.33])
    assert 0.0 <= low < 0.05 and 0.38 < high < 0.45  # not 0-1 for AP values of 0-0.4
    saved = {}
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: saved.setdefault("fig", fig))
    plot_teacher_vs_student(table, tmp_path / "s.png", title="run: model on data\nKD clean (bce) from t.zarr")
    ax = saved["fig"].axes[0]
    assert ax.get_xlim() == pytest.approx((low, high)) and ax.get_ylim() == pytest.approx((low, high))
    assert "2 of 3 classes" in ax.get_title()
    assert square_limits([0.2, 1.0])[1] > 1.0  # a class at AP 1 is not drawn on the frame


def test_a_kd_students_curve_is_titled_with_its_teacher_and_lambda_and_one_epoch_reads_as_one():
    student = load_config(
        None,
        {
            "model": "efficientnet_tiny",
            "kd": "clean",
            "kd_loss": "bce",
            "kd_lambda": "0.3",
            "tau": "2",
            "logits": "stores/demo/cmkd-ast.zarr",
        },
    )
    title = run_title("runs/demo/cmkd/short/ast_to_cnn/seed0", student, "demo")
    assert title.splitlines() == [
        "cmkd/short/ast_to_cnn/seed0: efficientnet_tiny on demo",
        "KD clean (bce) from cmkd-ast.zarr, \u03bb=0.3, \u03c4=2",
    ]
    teacher = load_config(None, {"model": "ast_micro"})
    assert run_title("runs/demo/cmkd/teacher/ast/seed0", teacher, "demo").endswith("supervised (no KD)")
    fig, ax = plt.subplots()
    ax.plot([1], [0.5])
    epoch_axis(ax, [1])
    assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1]
    plt.close(fig)
