"""The CMKD grid and its report, end to end on the tiny dataset (one epoch per cell)."""

from pathlib import Path

from pipeline.grid import GridSpec, cells_for, run_grid
from pipeline.report import table_text, write_report

from .conftest import tiny_config


def test_small_grid_runs_every_cell_and_reports_them(project):
    spec = GridSpec(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro", seeds=2, small=True)
    results = run_grid(spec, tiny_config(epochs=1), progress=False)
    assert set(results) == {c.name for c in cells_for(spec)}
    assert all(set(results[name]) == {0, 1} for name in results)
    assert Path("stores/tiny/cmkd-ast-seed1.zarr").exists()  # small grid: no replay, no views
    report = write_report(spec, results, "reports/tiny", seconds=12.0)
    text = report.read_text()
    assert "| ast -> cnn (clean) |" in text and "| cnn -> ast (clean) |" in text
    assert "±" in text  # two seeds: spread shown
    assert any(verdict in text for verdict in ("within spread", "KD helps", "KD hurts"))
    assert Path("reports/tiny/cmkd.png").stat().st_size > 0
    assert "## Per-seed" not in table_text(report)
    # a rerun reuses finished cells instead of training again
    again = run_grid(spec, tiny_config(epochs=1), progress=False)
    assert again["ast_to_cnn"][1]["map"] == results["ast_to_cnn"][1]["map"]


def test_full_grid_lists_the_papers_comparisons():
    names = {c.name for c in cells_for(GridSpec())}
    assert {"cnn_to_cnn", "ast_to_ast", "ast_to_cnn_replay", "ast_to_cnn_online", "ast_to_cnn_crossfit",
            "ast_to_cnn_tau"} <= names
    assert {c.kd for c in cells_for(GridSpec()) if c.name.startswith("ast_to_cnn")} == {"clean", "replay", "online"}


def test_full_grid_runs_once_with_every_mode(project):
    spec = GridSpec(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro", seeds=1, views=2, crossfit=2)
    results = run_grid(spec, tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), progress=False)
    assert results["ast_to_cnn_replay"][0]["kd"] == "replay"
    assert results["ast_to_cnn_online"][0]["kd"] == "online"
    assert results["ast_crossfit"][0]["cross_fitted"] == 2
    report = write_report(spec, results, "reports/tiny", seconds=1.0).read_text()
    assert "one seed: no call" in report and "out-of-fold" in report


def test_a_grid_that_adds_replay_builds_a_store_with_views(project):
    small = GridSpec(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro", small=True)
    run_grid(small, tiny_config(epochs=1), progress=False)
    full = GridSpec(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro", views=2,
                    only=("ast_to_cnn_replay",))
    results = run_grid(full, tiny_config(epochs=1, freqm=4), progress=False)
    assert results["ast_to_cnn_replay"][0]["kd"] == "replay"
    assert Path("stores/tiny/cmkd-ast-seed0-views2.zarr").exists()
