"""Fixtures shared across the test folders: a tiny real dataset (WAV files + manifest) inside a temporary
project folder, a student and a teacher store trained on it, a disk that fills up; and the `e2e` marking.

Stages use project-relative folders (data_manifests/, runs/, stores/), so tests that run them
chdir into the temporary project.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from pipeline.testing import write_tiny_dataset
from pipeline.training import run_training
from tests.helpers.tiny_project import tiny_config

torch.set_num_threads(1)

# What `make test-fast` leaves out (marker `e2e`, declared with the others in pyproject.toml): tests that
# need a real dataset on disk (the tiny project, the embedded corpus) and so train or run a stage on it ...
END_TO_END_FIXTURES = {"project", "corpus"}
# ... and tests that run real pieces at full weight without one: the bench harness, spawned processes,
# paper-size models, checkpoint round trips, concurrent writers (each took over ~5 s in a measured run);
# node ids under tests/, so each names its folder (file names repeat across folders)
END_TO_END_TESTS = (
    "bench/test_bench.py::",
    "experiments/test_parallel_runs.py::",
    "models/test_checkpoint_import.py::test_psla_checkpoint",
    "models/test_checkpoint_import.py::test_ast_checkpoint",
    "models/test_checkpoint_import.py::test_checkpoint_of_another_size",
    "models/test_checkpoint_import.py::test_own_checkpoint",
    "store/test_reader.py::test_store_reader_gives_back",
    "stage_two/test_distill.py::test_label_free_clips",
    "models/test_models.py::test_paper_size",
    "[ast_base]",
    "models/test_models.py::test_each_model_gets_its_standard_head",
    "store/test_store.py::test_worker_processes_write",
    "store/test_cli.py::test_every_command_has_help",
    "store/test_cli.py::test_ensemble",
    "store/test_cli.py::test_merge",
    "synthetic_corpus/test_corpus.py::test_earlier_versions",
    "synthetic_corpus/test_corpus.py::test_rerun_with_same_knobs",
    "models/test_checkpoint_import.py::test_documented_conversion",
    "training/test_training.py::test_fold_based_data",
    "store/test_remote.py::test_a_sharded_store",
)


def pytest_collection_modifyitems(config, items):
    """Mark the end-to-end tests ``e2e`` (see above): by the fixtures they need, or by name."""
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
            name in item.nodeid for name in END_TO_END_TESTS
        ):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temporary project folder with a tiny multi-label dataset; the cwd for the test."""
    write_tiny_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _one_thread():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    yield


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A tiny multi-label student (efficientnet_tiny, attention head, 1 epoch): its run folder."""
    root = tmp_path_factory.mktemp("predict")
    write_tiny_dataset(root)
    run_training(
        "tiny",
        tiny_config(epochs=1, pooling="attention"),
        "student",
        progress=False,
        manifests_root=root / "data_manifests",
        runs_root=root / "runs",
    )
    return root / "runs" / "tiny" / "student"


@pytest.fixture
def teacher_store(project):
    """A one-epoch teacher's store of the tiny project (no views), as another lab would send it."""
    from pipeline.stage_one import StageOneJob, run_stage_one

    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    run_stage_one(
        StageOneJob("tiny", "runs/tiny/teacher", "stores/s.zarr", scheduler="inline", chunk_clips=8), progress=False
    )
    return "stores/s.zarr"


@pytest.fixture
def small_disk(project):
    """A 4 MiB tmpfs inside the project: a disk that really fills up."""
    mount = project / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({made.stderr.decode().strip()}); needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
