"""The CMKD grid and its report, end to end on the tiny dataset (1-2 epochs per cell)."""

import json
from pathlib import Path

import pytest

from pipeline.experiments.grid import GridSpec, cell_config, cells_for, estimated_trainings, run_grid
from pipeline.experiments.report import table_text, verdict, write_report
from tests.helpers.tiny_project import tiny_recipe

TINY = dict(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro")


def test_small_grid_trains_teachers_once_and_pairs_students_by_seed(project):
    spec = GridSpec(**TINY, seeds=2, small=True, designs=("short",))
    recipe = tiny_recipe(teacher_epochs=2)
    results = run_grid(spec, recipe, progress=False)
    assert set(results) == {c.name for c in cells_for(spec)}
    assert all(set(results[name]) == {0, 1} for name in results)
    # teachers: one run (seed 0, the teacher budget) reused by both seeds
    assert results["teacher/ast"][1] == results["teacher/ast"][0]
    assert results["teacher/ast"][0]["epochs_trained"] == 2 and results["short/cnn"][1]["epochs_trained"] == 1
    assert not Path("runs/tiny/cmkd/teacher/ast/seed1").exists()
    assert Path("stores/tiny/cmkd-ast.zarr").exists() and Path("stores/tiny/cmkd-prior-sigmoid.zarr").exists()
    assert results["short/prior_to_cnn"][0]["logits"].endswith("cmkd-prior-sigmoid.zarr")
    assert results["short/ast_to_cnn"][0]["kd_loss"] == "bce"  # multi-label: the label type's KD form
    report = write_report(spec, results, "reports/tiny", seconds=12.0)
    text = report.read_text()
    assert "| short | ast -> cnn (clean) |" in text and "| short | prior -> cnn (control) |" in text
    assert "[" in text and "±" in text  # paired intervals over two seeds
    assert Path("reports/tiny/cmkd.png").stat().st_size > 0
    assert Path("reports/tiny/cmkd-per-class.png").stat().st_size > 0
    assert "## Teachers" not in table_text(report)
    # a rerun reuses finished cells instead of training again
    again = run_grid(spec, recipe, progress=False)
    assert again["short/ast_to_cnn"][1]["map"] == results["short/ast_to_cnn"][1]["map"]


def test_equal_design_students_get_the_teacher_budget_and_seed0_baseline_is_the_teacher(project):
    spec = GridSpec(**TINY, seeds=1, small=True, designs=("equal",), only=("equal/ast_to_cnn",))
    recipe = tiny_recipe(teacher_epochs=2)
    names = {c.name for c in cells_for(spec)}
    assert names == {"teacher/ast", "teacher/cnn", "equal/cnn", "equal/ast_to_cnn"}
    assert estimated_trainings(spec) == 3  # the seed-0 baseline is the CNN teacher run, not a fourth training
    results = run_grid(spec, recipe, progress=False)
    assert results["equal/ast_to_cnn"][0]["epochs_trained"] == 2
    assert results["equal/cnn"][0] == json.loads(Path("runs/tiny/cmkd/teacher/cnn/seed0/summary.json").read_text())
    assert not Path("runs/tiny/cmkd/equal/cnn").exists()
    assert estimated_trainings(spec) == 0  # a rerun has nothing left to train


def test_full_grid_lists_the_papers_comparisons_and_controls():
    names = {c.name for c in cells_for(GridSpec())}
    for design in ("short", "equal"):
        assert {
            f"{design}/cnn_to_cnn",
            f"{design}/ast_to_ast",
            f"{design}/prior_to_cnn",
            f"{design}/shuffled_ast_to_cnn",
            f"{design}/shuffled_cnn_to_ast",
        } <= names
    assert {
        "short/ast_to_cnn_replay",
        "short/ast_to_cnn_online",
        "short/ast_to_cnn_crossfit",
        "short/ast_to_cnn_tau",
        "teacher/ast_crossfit",
    } <= names
    assert {c.kd for c in cells_for(GridSpec()) if c.name.startswith("short/ast_to_cnn")} == {
        "clean",
        "replay",
        "online",
    }


def test_cell_configs_pick_family_role_and_seed():
    from pipeline.recipe import Recipe

    recipe = Recipe(base={"epochs": "6", "lr": "1e-3"}, families={"ast": {"lr": "5e-4"}}, teacher={"epochs": "18"})
    spec = GridSpec(cnn="efficientnet_tiny", ast="ast_micro")
    cells = {c.name: c for c in cells_for(spec)}
    teacher = cell_config(spec, recipe, cells["teacher/ast"], seed=2)
    assert (teacher.model, teacher.lr, teacher.epochs, teacher.seed) == ("ast_micro", 5e-4, 18, 0)
    short = cell_config(spec, recipe, cells["short/ast_to_cnn"], seed=2)
    assert (short.model, short.lr, short.epochs, short.seed) == ("efficientnet_tiny", 1e-3, 6, 2)
    equal = cell_config(spec, recipe, cells["equal/cnn_to_ast"], seed=1)
    assert (equal.model, equal.epochs, equal.seed) == ("ast_micro", 18, 1)


@pytest.mark.parametrize(
    "base, prior, expected",
    [
        ({"verdict": "helps"}, {"verdict": "helps"}, "knowledge helps"),
        ({"verdict": "helps"}, {"verdict": "no effect"}, "helps, but not beyond the prior control"),
        ({"verdict": "no effect"}, {"verdict": "helps"}, "knowledge helps (vs prior only)"),
        ({"verdict": "hurts"}, {"verdict": "no effect"}, "KD hurts"),
        ({"verdict": "no effect"}, {"verdict": "no effect"}, "no effect"),
        ({"verdict": "one seed: no call"}, None, "one seed: no call"),
    ],
)
def test_verdicts_read_the_paired_intervals(base, prior, expected):
    assert verdict(base, prior) == expected


def test_full_grid_runs_once_with_every_mode(project):
    spec = GridSpec(**TINY, seeds=1, views=2, crossfit=2, designs=("short",))
    results = run_grid(spec, tiny_recipe(teacher_epochs=1, mixup=0.5, freqm=4, timem=8), progress=False)
    assert results["short/ast_to_cnn_replay"][0]["kd"] == "replay"
    assert results["short/ast_to_cnn_online"][0]["kd"] == "online"
    assert results["teacher/ast_crossfit"][0]["cross_fitted"] == 2
    assert results["short/shuffled_ast_to_cnn"][0]["logits"].endswith("cmkd-shuffled-ast.zarr")
    from pipeline.experiments.diagnostics import grid_diagnostics
    from pipeline.manifests import load_manifest

    diagnostics, groups = grid_diagnostics(results, load_manifest("data_manifests/tiny"), spec.fold)
    assert groups == {}  # not the embedded corpus's vocabulary
    assert any("teacher on held-out clips" in text for text in diagnostics.values())
    report = write_report(spec, results, "reports/tiny", seconds=1.0, diagnostics=diagnostics).read_text()
    assert "one seed: no call" in report and "out-of-fold" in report and "## Soft targets" in report


def test_a_grid_that_adds_replay_builds_a_store_with_views(project):
    small = GridSpec(**TINY, small=True, designs=("short",))
    run_grid(small, tiny_recipe(teacher_epochs=1), progress=False)
    full = GridSpec(**TINY, views=2, designs=("short",), only=("short/ast_to_cnn_replay",))
    results = run_grid(full, tiny_recipe(teacher_epochs=1, freqm=4), progress=False)
    assert results["short/ast_to_cnn_replay"][0]["kd"] == "replay"
    assert Path("stores/tiny/cmkd-ast-views2.zarr").exists()


def test_a_grid_trained_on_other_data_is_set_aside_not_reused(project):
    """Finished cells are reused only while the manifest is the one they were trained on (a new
    corpus version must not pick up the old version's teachers); the old runs and stores are kept."""
    from pipeline.experiments.grid import set_aside_stale_grid
    from pipeline.experiments.grid_reuse import GRID_DATA_FILE

    spec = GridSpec(**TINY, seeds=1, small=True, designs=("short",))
    assert set_aside_stale_grid(spec) is None  # first grid: nothing to move, the data is recorded
    finished = Path("runs/tiny/cmkd/teacher/cnn/seed0")
    finished.mkdir(parents=True)
    (finished / "summary.json").write_text("{}")
    Path("stores/tiny/cmkd-cnn.zarr").mkdir(parents=True)
    assert set_aside_stale_grid(spec) is None  # same data: the finished run stays for reuse
    assert (finished / "summary.json").exists()

    clips = Path("data_manifests/tiny/clips.csv")
    clips.write_text(clips.read_text().replace("\n", "\r\n", 1))  # any change to the manifest's bytes
    moved = set_aside_stale_grid(spec)
    assert moved is not None and (moved / "teacher/cnn/seed0/summary.json").exists()
    assert not finished.exists() and (Path("runs/tiny/cmkd") / GRID_DATA_FILE).exists()
    assert list(Path("stores/tiny").glob("cmkd.*/cmkd-cnn.zarr")) and not Path("stores/tiny/cmkd-cnn.zarr").exists()

    finished.mkdir(parents=True)  # the data changes back and forth: the second set-aside gets its own folder
    (finished / "summary.json").write_text("{}")
    clips.write_text(clips.read_text().replace("\r\n", "\n", 1))
    again = set_aside_stale_grid(spec)
    assert again is not None and again != moved and (again / "teacher/cnn/seed0/summary.json").exists()


def test_family_table_pairs_the_families_by_seed_per_class_group():
    from pipeline.experiments.report import family_table

    groups = {"local": [0, 1], "temporal": [2]}
    # per-class AP per seed: the CNN better on local, the AST better on temporal, by far more than the spread
    cnn = {s: {"map": 0.50 + 0.01 * s, "per_class_ap": [0.8 + 0.01 * s, 0.6, 0.10 + 0.01 * s]} for s in range(3)}
    ast = {s: {"map": 0.49 + 0.01 * s, "per_class_ap": [0.6 + 0.01 * s, 0.5, 0.40 + 0.02 * s]} for s in range(3)}
    lines = family_table({"equal/cnn": cnn, "equal/ast": ast}, groups, "map", [0, 1, 2])
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]] for line in lines[2:]}
    assert rows["local group (2 classes)"][0] == "0.7050 ± 0.0050"  # mean of (0.8+0.01s, 0.6)/2 over seeds
    assert rows["local group (2 classes)"][3] == "CNN" and rows["temporal group (1 classes)"][3] == "AST"
    assert rows["temporal group (1 classes)"][2].startswith("+0.3100")
    assert rows["all classes (mAP)"][3] == "CNN"  # -0.01 every seed: a zero-spread paired difference
    one_seed = family_table({"equal/cnn": {0: cnn[0]}, "equal/ast": {0: ast[0]}}, groups, "map", [0])
    assert all(line.endswith("one seed: no call |") for line in one_seed[2:])


def test_group_table_covers_every_kd_cell_and_teacher_table_says_na_for_unscored_groups():
    from pipeline.experiments.report import group_table, teacher_lines

    spec = GridSpec(
        **TINY,
        seeds=1,
        designs=("short",),
        direction="cnn_to_ast",
        only=("short/cnn_to_ast_online", "short/cnn_to_ast_crossfit"),
    )
    groups = {"local": [0], "temporal": [1]}
    run = {"map": 0.5, "per_class_ap": [0.6, 0.4], "model": "m", "epochs_trained": 4}
    results = {
        name: {0: run} for name in ("teacher/cnn", "short/ast", "short/cnn_to_ast_online", "short/cnn_to_ast_crossfit")
    }
    results["teacher/cnn_crossfit"] = {
        0: {
            "map": 0.4,
            "per_class_ap": [0.7, None],
            "model": "m",
            "epochs_trained": "4/4/4",
            "out_of_fold": {"map": 0.3},
        }
    }
    rows = group_table(spec, results, groups)[2:]
    assert {row.split("|")[2].strip() for row in rows} == {"cnn -> ast (online)", "cnn_crossfit -> ast (clean)"}
    crossfit_local = next(r for r in rows if "crossfit" in r and "| local |" in r)
    assert "| 0.7000 |" in crossfit_local  # the teacher AP column reads the cross-fitted teacher's summary
    teacher_row = next(
        line for line in teacher_lines(spec, results, "map", groups) if "teacher/cnn_crossfit (m)" in line
    )
    assert teacher_row.endswith("| 4/4/4 | 0.7000 | n/a |") and "nan" not in teacher_row


def test_a_changed_recipe_retrains_what_it_changes_and_keeps_the_rest(project):
    """A finished cell is reused only with the recipe it would get now: a student whose recipe changed
    is moved aside and trained again; a teacher whose recipe changed sets the whole grid aside (every
    store and student learned from it). Nothing is deleted."""
    spec = GridSpec(**TINY, seeds=1, small=True, designs=("short",), only=("short/ast_to_cnn",))
    first = run_grid(spec, tiny_recipe(teacher_epochs=1), progress=False)
    assert first["short/ast_to_cnn"][0]["epochs_trained"] == 1
    longer_students = run_grid(spec, tiny_recipe(teacher_epochs=1, epochs=2), progress=False)
    assert longer_students["teacher/ast"][0] == first["teacher/ast"][0]  # the teacher's recipe is unchanged
    assert longer_students["short/ast_to_cnn"][0]["epochs_trained"] == 2
    assert Path("runs/tiny/cmkd/short/ast_to_cnn/seed0.superseded/summary.json").exists()
    assert run_grid(spec, tiny_recipe(teacher_epochs=1, epochs=2), progress=False) == longer_students  # reused

    longer_teachers = run_grid(spec, tiny_recipe(teacher_epochs=2, epochs=2), progress=False)
    assert longer_teachers["teacher/ast"][0]["epochs_trained"] == 2
    aside = [p for p in Path("runs/tiny").glob("cmkd.*-recipe")]
    assert len(aside) == 1 and (aside[0] / "teacher/ast/seed0/summary.json").exists()
    assert list(Path("stores/tiny").glob("cmkd.*-recipe/cmkd-ast.zarr"))


def test_a_cell_killed_part_way_continues_from_its_last_epoch(project, capsys):
    from tests.helpers.tiny_project import run_killed_after_epoch

    code = (
        "from tests.helpers.tiny_project import tiny_recipe\nfrom pipeline.experiments.grid import GridSpec, run_grid\n"
        "run_grid(GridSpec(dataset='tiny', cnn='efficientnet_tiny', ast='ast_micro', seeds=1, small=True, "
        "designs=('short',), only=('short/cnn',)), tiny_recipe(epochs=2), progress=False)\n"
    )
    killed = run_killed_after_epoch(code, 1, cwd=project)
    assert killed.returncode != 0
    metrics = Path("runs/tiny/cmkd/short/cnn/seed0/metrics.csv")
    epoch_one = metrics.read_text().splitlines()[1]
    spec = GridSpec(**TINY, seeds=1, small=True, designs=("short",), only=("short/cnn",))
    results = run_grid(spec, tiny_recipe(epochs=2), progress=False)
    assert "resuming runs/tiny/cmkd/short/cnn/seed0 after epoch 1" in capsys.readouterr().out
    assert results["short/cnn"][0]["epochs_trained"] == 2
    assert metrics.read_text().splitlines()[1] == epoch_one  # epoch 1 was not trained again


def test_a_cross_fitted_teacher_killed_part_way_keeps_its_finished_epochs(project, capsys):
    """Cross-fitting trains k members one after another: a kill in the middle costs the epoch under
    way, not every member trained so far. (Students train 1 epoch here, so only a teacher reaches 2.)"""
    from tests.helpers.tiny_project import run_killed_after_epoch

    cells = "('short/ast_to_cnn_crossfit',)"
    code = (
        "from tests.helpers.tiny_project import tiny_recipe\nfrom pipeline.experiments.grid import GridSpec, run_grid\n"
        "run_grid(GridSpec(dataset='tiny', cnn='efficientnet_tiny', ast='ast_micro', seeds=1, crossfit=2, "
        f"designs=('short',), only={cells}), tiny_recipe(teacher_epochs=2), progress=False)\n"
    )
    killed = run_killed_after_epoch(code, 2, cwd=project)
    assert killed.returncode != 0
    teacher = Path("runs/tiny/cmkd/teacher/ast_crossfit/seed0")
    member = teacher / "member0"
    trained = (member / "metrics.csv").read_text().splitlines()
    assert len(trained) == 3 and not (teacher / "summary.json").exists()
    spec = GridSpec(**TINY, seeds=1, crossfit=2, designs=("short",), only=("short/ast_to_cnn_crossfit",))
    results = run_grid(spec, tiny_recipe(teacher_epochs=2), progress=False)
    assert f"resuming {member} after epoch 2" in capsys.readouterr().out
    assert (member / "metrics.csv").read_text().splitlines() == trained  # no epoch trained again
    assert results["teacher/ast_crossfit"][0]["cross_fitted"] == 2
    assert results["short/ast_to_cnn_crossfit"][0]["kd"] == "clean"
