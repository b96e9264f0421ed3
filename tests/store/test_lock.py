"""One writer per store, for real: a second process holding the lock, OVERWRITE races between two
processes, stale locks of dead writers. A refused writer changes nothing, not even the sessions log."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.store import StoreLock, StoreLocked, lock_path
from pipeline.training import run_training
from tests.helpers import REPO_ROOT
from tests.helpers.tiny_project import tiny_config


def store_digest(path: str | Path) -> str:
    """Every file of a store, names and bytes: equal digests mean nothing was touched."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


@contextmanager
def lock_held_elsewhere(store: str):
    """Another live process holds the store's lock for the duration of the block."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from pipeline.store import StoreLock; "
        "StoreLock(sys.argv[1]).acquire(); print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, store], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def teachers(project):
    run_training("tiny", tiny_config(epochs=1), "a", progress=False)
    run_training("tiny", tiny_config(epochs=1, seed=5), "b", progress=False)
    return "runs/tiny/a", "runs/tiny/b"


def job(out, teacher, **kw):
    return StageOneJob(dataset="tiny", teacher=teacher, out=out, scheduler="inline", chunk_clips=5, **kw)


def test_refused_writer_and_refused_overwrite_change_nothing(teachers):
    a, b = teachers
    run_stage_one(job("stores/s.zarr", a), progress=False)
    before = store_digest("stores/s.zarr")
    with lock_held_elsewhere("stores/s.zarr") as pid:
        with pytest.raises(StoreLocked, match=str(pid)):
            run_stage_one(job("stores/s.zarr", a), progress=False)  # a resume would log a session
        with pytest.raises(StoreLocked, match=str(pid)):
            run_stage_one(job("stores/s.zarr", b, overwrite=True), progress=False)  # would delete the store
    assert store_digest("stores/s.zarr") == before
    assert len(zarr.open_group("stores/s.zarr", mode="r").attrs["sessions"]) == 1


def test_create_store_alone_refuses_while_another_process_writes(tmp_path):
    from tests.helpers.store import make_store

    path = make_store(tmp_path / "s.zarr")
    before = store_digest(path)
    with lock_held_elsewhere(str(path)):
        with pytest.raises(StoreLocked):
            make_store(path, overwrite=True)
        with pytest.raises(StoreLocked):
            make_store(path)
    assert store_digest(path) == before
    make_store(path, overwrite=True)  # once the writer is gone


RACE = """
import sys; sys.path.insert(0, %r)
import torch; torch.set_num_threads(1)
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.store import StoreLocked
try:
    run_stage_one(StageOneJob(dataset='tiny', teacher=sys.argv[1], out='stores/race.zarr', scheduler='inline',
                              chunk_clips=5, overwrite=True), progress=False)
    print('wrote')
except StoreLocked as error:
    print('refused', error)
"""


@pytest.mark.slow
def test_overwrite_race_leaves_one_consistent_store(teachers):
    """Two OVERWRITE=1 runs with different teachers started together on the same store: whoever
    wins, the finished store's provenance names the teacher whose logits it holds."""
    a, b = teachers
    run_stage_one(job("stores/ref-a.zarr", a), progress=False)
    run_stage_one(job("stores/ref-b.zarr", b), progress=False)
    run_stage_one(job("stores/race.zarr", a), progress=False)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE % str(REPO_ROOT), t], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for t in (b, a)
    ]
    outcomes = [r.communicate(timeout=300) for r in racers]
    assert all(r.returncode == 0 for r in racers), [o[1][-1500:] for o in outcomes]
    assert any(o[0].startswith("wrote") for o in outcomes)
    race = zarr.open_group("stores/race.zarr", mode="r")
    assert np.asarray(race["chunk_done"][:]).all()
    sha = race.attrs["teacher"]["checkpoint_sha256"]
    reference = next(
        zarr.open_group(p, mode="r")
        for p in ("stores/ref-a.zarr", "stores/ref-b.zarr")
        if zarr.open_group(p, mode="r").attrs["teacher"]["checkpoint_sha256"] == sha
    )
    assert np.array_equal(race["logits"][:], reference["logits"][:])
    assert not lock_path("stores/race.zarr").exists()


def test_stale_lock_of_a_killed_writer_is_taken_over(teachers):
    a, _ = teachers
    code = (
        f"import os, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); from pipeline.store import StoreLock; "
        "StoreLock('stores/st.zarr').acquire(); os.kill(os.getpid(), 9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    stale = json.loads(lock_path("stores/st.zarr").read_text())
    assert stale["pid"] != os.getpid()
    summary = run_stage_one(job("stores/st.zarr", a), progress=False)
    assert summary["failures"] == 0 and not lock_path("stores/st.zarr").exists()


def test_unreadable_lock_file_is_refused_naming_it(tmp_path):
    """Our locks are linked into place whole, so an unreadable one was not left by our crash: it is
    refused (never silently taken over), and the message names the file to delete."""
    path = tmp_path / "s.zarr"
    lock_path(path).write_text("{not json")
    with pytest.raises(StoreLocked, match=str(lock_path(path))):
        StoreLock(path).acquire()
    assert lock_path(path).read_text() == "{not json"
