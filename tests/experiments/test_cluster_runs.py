"""The grid's cells as dask tasks (make cmkd SCHEDULER=local): the same results as the local-process run."""

import json
import shutil
from pathlib import Path

import pytest

from pipeline.cluster import ClusterError
from pipeline.experiments.cluster_runs import check_train_slots
from pipeline.experiments.grid import GridSpec, run_grid
from pipeline.experiments.parallel_runs import LOG_FILE
from tests.helpers.tiny_project import tiny_recipe

TINY = dict(dataset="tiny", cnn="efficientnet_tiny", ast="ast_micro")


@pytest.mark.slow  # two grids, one of them on a multi-process dask cluster: minutes on two shared cores
def test_a_grid_through_a_dask_local_cluster_equals_the_local_process_grid(project):
    recipe = tiny_recipe(teacher_epochs=1, num_workers=1)  # a DataLoader worker: the dask worker may not be daemonic
    cells = dict(small=True, designs=("short",), only=("short/ast_to_cnn",))
    on_dask = run_grid(GridSpec(**TINY, seeds=1, jobs=2, scheduler="local", **cells), recipe, progress=False)
    assert Path(f"runs/tiny/cmkd/short/ast_to_cnn/seed0/{LOG_FILE}").read_text().strip()  # the task's output
    shutil.move("runs/tiny/cmkd", "runs/tiny/cmkd-dask")
    shutil.move("stores/tiny", "stores/tiny-dask")
    local = run_grid(GridSpec(**TINY, seeds=1, jobs=1, **cells), recipe, progress=False)
    assert set(on_dask) == set(local) and len(on_dask) >= 3  # the teacher, the no-KD and the KD cell
    for cell, runs in local.items():
        assert on_dask[cell][0]["map"] == runs[0]["map"], cell
        assert on_dask[cell][0]["per_class_ap"] == runs[0]["per_class_ap"], cell
    for name in ("short/ast_to_cnn/seed0", "teacher/ast/seed0"):
        first = json.loads(Path(f"runs/tiny/cmkd-dask/{name}/summary.json").read_text())
        assert (
            first["per_class_ap"] == json.loads(Path(f"runs/tiny/cmkd/{name}/summary.json").read_text())["per_class_ap"]
        )


def test_workers_without_a_train_slot_are_refused_rather_than_waited_for():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        with pytest.raises(
            ClusterError,
            match=r"declares the resource 'train': start them with .*--resources "
            r"train=1",
        ):
            check_train_slots(client)
