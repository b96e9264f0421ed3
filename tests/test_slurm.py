"""Stage one through a real SLURM scheduler (dask-jobqueue SLURMCluster -> sbatch -> slurmd on 127.0.0.1):
the store equals a local-cluster run's, logit for logit. SLURM comes from the system packages
(.ci/install_slurm.sh, which .ci/run calls); where it is absent or its daemons cannot run here, the test
skips with the exact reason."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from pipeline.cluster import ClusterResources
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.training import run_training
from tests.helpers.slurm_local import LocalSlurm, missing_programs
from tests.helpers.tiny_project import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture
def slurm(tmp_path_factory, monkeypatch):
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM not installed ({', '.join(missing)} not found): run .ci/install_slurm.sh as root")
    if os.geteuid() != 0:
        pytest.skip("the one-node SLURM test starts slurmd as root (SlurmdUser=root); not root here")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    error = cluster.start()
    if error:
        pytest.skip(f"SLURM daemons did not start here: {error}")
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    yield cluster
    cluster.stop()


def test_stage_one_through_slurm_writes_the_local_clusters_store(project, slurm):
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    common = dict(dataset="tiny", teacher="runs/tiny/teacher", chunk_clips=5, views=2)
    run_stage_one(StageOneJob(out="stores/local.zarr", scheduler="", workers=1, **common), progress=False)
    resources = ClusterResources(
        jobs=1, cores=1, memory="2GB", walltime="00:10:00", queue="debug", host="127.0.0.1", worker_timeout_s=180
    )
    summary = run_stage_one(
        StageOneJob(out="stores/slurm.zarr", scheduler="slurm", cluster=resources, **common), progress=False
    )
    assert summary["engine"] == "slurm" and summary["failures"] == 0
    local, remote = zarr.open_group("stores/local.zarr", mode="r"), zarr.open_group("stores/slurm.zarr", mode="r")
    assert remote["logits"].shape == (32, 4)
    assert np.array_equal(local["logits"][:], remote["logits"][:])
    assert np.array_equal(local["view_logits"][:], remote["view_logits"][:])
    assert list(local["clip_id"][:]) == list(remote["clip_id"][:])
    logs = list((project / "logs" / "slurm").glob("*.err")) + list((project / "logs" / "slurm").glob("*.out"))
    assert logs and any("dask" in p.read_text(errors="replace").lower() for p in logs)  # a real batch job ran


def test_the_grid_through_slurm_equals_the_local_process_grid(project, slurm):
    """make cmkd SCHEDULER=slurm: each cell a dask task on a SLURM job's worker (its DataLoader worker
    included: the job's dask worker is not daemonic); every cell's numbers equal the local-process grid's."""
    import json
    import shutil
    from pathlib import Path

    from pipeline.experiments.grid import GridSpec, run_grid
    from tests.helpers.tiny_project import tiny_recipe

    recipe = tiny_recipe(teacher_epochs=1, num_workers=1)
    cells = {
        "dataset": "tiny",
        "cnn": "efficientnet_tiny",
        "ast": "ast_micro",
        "seeds": 1,
        "small": True,
        "designs": ("short",),
        "only": ("short/ast_to_cnn",),
    }
    resources = ClusterResources(
        jobs=1, cores=1, memory="2GB", walltime="00:30:00", queue="debug", host="127.0.0.1", worker_timeout_s=180
    )
    on_slurm = run_grid(GridSpec(scheduler="slurm", cluster=resources, **cells), recipe, progress=False)
    shutil.move("runs/tiny/cmkd", "runs/tiny/cmkd-slurm")
    shutil.move("stores/tiny", "stores/tiny-slurm")
    local = run_grid(GridSpec(jobs=1, **cells), recipe, progress=False)
    assert set(on_slurm) == set(local) and len(local) >= 3
    for cell, runs in local.items():
        assert on_slurm[cell][0]["per_class_ap"] == runs[0]["per_class_ap"], cell
    summary = json.loads(Path("runs/tiny/cmkd-slurm/short/ast_to_cnn/seed0/summary.json").read_text())
    assert summary["map"] == local["short/ast_to_cnn"][0]["map"]
