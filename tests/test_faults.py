"""Fault injection on stage one: SIGKILL at seeded random moments, a dask worker killed mid-run, a
disk that fills up mid-run or during creation, an output folder that cannot be written. Every
rerun completes and equals an uninterrupted run: no row lost or duplicated."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.store import done_chunks, verify_store
from pipeline.training import run_training

from .conftest import tiny_config
from .fault_hooks import KINDS

REPO = Path(__file__).resolve().parents[1]
KILL_TRIALS_PER_KIND = 3  # 9 kill moments in all
KILL_SEED = 20261201


@pytest.fixture
def teacher(project):
    run_training("tiny", tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), "teacher", progress=False)
    return "runs/tiny/teacher"


def job(out, **kw):
    return StageOneJob(
        **{
            "dataset": "tiny",
            "teacher": "runs/tiny/teacher",
            "out": out,
            "scheduler": "inline",
            "chunk_clips": 5,
            "views": 2,
            **kw,
        }
    )


def hooked_run(project: Path, kind: str, kill_at: int, store: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tests.fault_hooks", kind, str(kill_at), store, "2"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )


def arrays_of(path: str | Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(array[:]) for name, array in group.arrays()}


def assert_same_store(path, reference: dict[str, np.ndarray]) -> None:
    assert verify_store(path) == []
    got = arrays_of(path)
    assert sorted(got) == sorted(reference)
    for name, expected in reference.items():
        if expected.dtype.kind == "f":
            assert np.array_equal(got[name], expected, equal_nan=True), name
        else:
            assert np.array_equal(got[name], expected), name
    ids = list(got["clip_id"])
    assert len(ids) == len(set(ids)) and np.asarray(got["valid"]).all()  # no row lost or duplicated


@pytest.mark.slow
def test_sigkill_at_seeded_random_moments_resumes_to_the_uninterrupted_store(teacher, project):
    done = hooked_run(project, "none", 0, "stores/reference.zarr")
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(done_chunks("stores/reference.zarr")) == 7  # a multi-chunk store
    reference = arrays_of("stores/reference.zarr")
    rng = random.Random(KILL_SEED)
    moments = [
        (kind, at)
        for kind in KINDS  # every kind of moment, at distinct seeded random counts
        for at in sorted(rng.sample(range(1, counts[kind] + 1), min(KILL_TRIALS_PER_KIND, counts[kind])))
    ]
    trials = []
    for trial, (kind, kill_at) in enumerate(moments):
        store = f"stores/killed{trial}.zarr"
        killed = hooked_run(project, kind, kill_at, store)
        assert killed.returncode == -9, (kind, kill_at, killed.stderr[-2000:])
        rerun = hooked_run(project, "none", 0, store)
        assert rerun.returncode == 0, (kind, kill_at, rerun.stderr[-2000:])
        assert_same_store(store, reference)
        trials.append((kind, kill_at, counts[kind]))
    assert len(trials) >= 5
    print(f"\nkill trials: {len(trials)} survived, rows lost 0: {trials}")


@pytest.mark.slow
def test_killed_dask_worker_is_replaced_and_the_store_completes(teacher, project, monkeypatch):
    import pipeline.stage_one.run as stage_one

    from .fault_hooks import dying_compute_chunk

    marker = project / "worker-killed"
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import tests.fault_hooks
    monkeypatch.setenv("CMKD_TEST_KILL_MARKER", str(marker))
    real_compute = stage_one.compute_chunk
    monkeypatch.setattr(stage_one, "compute_chunk", dying_compute_chunk)
    summary = run_stage_one(job("stores/dask.zarr", scheduler="", workers=2, views=0), progress=False)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker process really died
    assert summary["failures"] == 0 and verify_store("stores/dask.zarr") == []
    monkeypatch.setattr(stage_one, "compute_chunk", real_compute)
    run_stage_one(job("stores/inline.zarr", views=0), progress=False)
    dask, inline = arrays_of("stores/dask.zarr"), arrays_of("stores/inline.zarr")
    assert list(dask["clip_id"]) == list(inline["clip_id"]) and dask["valid"].all()
    assert np.allclose(dask["logits"].astype(np.float32), inline["logits"].astype(np.float32), atol=1e-3)


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


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a filler file until the disk is full (or only `leave` bytes are left)."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        while True:
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            if free <= leave:
                break
            try:
                handle.write(b"\0" * min(1 << 16, max(free - leave, 512)))
                handle.flush()
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    return filler


def test_disk_full_mid_run_keeps_finished_chunks_and_resumes(teacher, project, small_disk, monkeypatch):
    import pipeline.store as store_api
    from stages.common import error_line

    run_stage_one(job("stores/reference.zarr"), progress=False)
    reference = arrays_of("stores/reference.zarr")
    real_mark, marked = store_api.mark_chunk_done, []

    def mark_then_fill(*args, **kwargs):
        real_mark(*args, **kwargs)
        marked.append(args[1])
        if len(marked) == 3:
            fill(small_disk)

    monkeypatch.setattr(store_api, "mark_chunk_done", mark_then_fill)
    out = small_disk / "s.zarr"
    with pytest.raises(OSError) as caught:
        run_stage_one(job(str(out)), progress=False)
    assert caught.value.errno == errno.ENOSPC
    line, _ = error_line(caught.value)
    assert line.startswith(f"{out}: No space left on device") and "rerun" in line
    assert done_chunks(out) == set(marked)  # what finished is recorded ...
    problems = verify_store(out)
    assert all("not written" in p or "partial files" in p for p in problems), problems  # ... and intact
    monkeypatch.setattr(store_api, "mark_chunk_done", real_mark)
    (small_disk / "filler").unlink()
    summary = run_stage_one(job(str(out)), progress=False)
    assert summary["computed_clips"] == 32 - 5 * len(marked)
    assert_same_store(out, reference)


def test_disk_full_while_creating_the_store_is_redone_after_freeing_space(teacher, project, small_disk):
    run_stage_one(job("stores/reference.zarr"), progress=False)
    filler = fill(small_disk, leave=24 * 1024)  # room for a few of the store's files, not all
    out = small_disk / "s.zarr"
    with pytest.raises(OSError):
        run_stage_one(job(str(out)), progress=False)
    assert "format" not in zarr.open_group(str(out), mode="r").attrs  # the creation really was cut short
    filler.unlink()
    run_stage_one(job(str(out)), progress=False)
    assert_same_store(out, arrays_of("stores/reference.zarr"))


def test_unwritable_output_is_one_error_line_and_moves_nothing(teacher, project, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.teacher_logits",
            "--dataset",
            "tiny",
            "--teacher",
            teacher,
            "--out",
            str(small_disk / "s.zarr"),
            "--scheduler",
            "inline",
        ],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith(f"error: {small_disk}") and "Read-only file system" in result.stderr
    assert not (project / "stores/tiny/LATEST").exists()


def test_disk_full_during_training_keeps_the_last_checkpoint_and_resumes(project, small_disk, monkeypatch):
    """torch reports a full disk as a RuntimeError; the run stops with ENOSPC naming the checkpoint,
    the previous last.pt is intact, and RESUME reaches the uninterrupted run's weights."""
    import torch

    import pipeline.training.loop as loop
    from pipeline.checkpoints import load_checkpoint

    config = tiny_config(epochs=3)
    run_training("tiny", config, "whole", progress=False)
    real_save = loop.save_checkpoint

    def save_then_fill(state, path):
        real_save(state, path)
        if str(path).endswith("last.pt") and state["epoch"] == 1:
            fill(small_disk)

    monkeypatch.setattr(loop, "save_checkpoint", save_then_fill)
    with pytest.raises(OSError) as caught:
        run_training("tiny", config, "full", runs_root=small_disk, progress=False)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename  # names what could not be written
    run_dir = small_disk / "tiny" / "full"
    assert load_checkpoint(run_dir / "checkpoints/last.pt")["epoch"] == 1
    assert not list(run_dir.glob("checkpoints/*.tmp"))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    (small_disk / "filler").unlink()
    run_training("tiny", config, "full", runs_root=small_disk, resume=True, progress=False)
    whole = load_checkpoint("runs/tiny/whole/checkpoints/final.pt")["model"]
    resumed = load_checkpoint(run_dir / "checkpoints/final.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
