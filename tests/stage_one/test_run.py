"""Stage one: teacher -> Zarr store, resumable, identical across engines and after SIGKILL. The fault
trials (marker `faults`): SIGKILL at seeded random moments, a dask worker killed mid-run, a disk that
fills up mid-run or during creation, an output folder that cannot be written; every rerun completes
and equals an uninterrupted run, no row lost or duplicated."""

import errno
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.store import done_chunks, verify_store
from pipeline.training import run_training
from tests.helpers import REPO_ROOT
from tests.helpers.disk import fill
from tests.helpers.fault_hooks import KINDS, hooked_run
from tests.helpers.store import arrays_of, assert_same_store
from tests.helpers.tiny_project import tiny_config


@pytest.fixture
def teacher(project):
    run_training("tiny", tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), "teacher", progress=False)
    return "runs/tiny/teacher"


def job(out, **kw):
    base = dict(dataset="tiny", teacher="runs/tiny/teacher", out=out, scheduler="inline", chunk_clips=5)
    base.update(kw)
    return StageOneJob(**base)


def test_store_holds_the_teachers_clean_logits(teacher):
    from pipeline.audio import read_audio
    from pipeline.checkpoints import model_from_checkpoint
    from pipeline.config import FrontEndConfig
    from pipeline.features import wave_to_features
    from pipeline.manifests import load_manifest

    summary = run_stage_one(job("stores/t.zarr", dtype="float32"), progress=False)
    assert summary["clips"] == 32 and summary["failures"] == 0
    group = zarr.open_group("stores/t.zarr", mode="r")  # plain zarr, no project code
    assert group["logits"].shape == (32, 4)
    model, _, ckpt = model_from_checkpoint(teacher)
    manifest = load_manifest("data_manifests/tiny")
    clip = manifest.clips[7]
    features = wave_to_features(read_audio(manifest.audio_path(clip)), FrontEndConfig(**ckpt["front_end"]))
    with torch.no_grad():
        expected = model(features[None])[0].numpy()
    assert list(group["clip_id"][:]) == [c.clip_id for c in manifest.clips]
    assert np.allclose(group["logits"][7], expected, atol=1e-4)
    assert group.attrs["teacher"]["model"] == "efficientnet_tiny"
    assert group.attrs["activation"] == "sigmoid"


def test_two_dask_workers_equal_one_worker(teacher):
    run_stage_one(job("stores/one.zarr", scheduler="", workers=1), progress=False)
    run_stage_one(job("stores/two.zarr", scheduler="", workers=2), progress=False)
    one, two = zarr.open_group("stores/one.zarr", mode="r"), zarr.open_group("stores/two.zarr", mode="r")
    assert np.array_equal(one["logits"][:], two["logits"][:])


def test_resume_after_sigkill_is_bit_identical(teacher):
    run_stage_one(job("stores/whole.zarr", views=2), progress=False)
    script = (
        f"import os, sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "import torch; torch.set_num_threads(1)\n"
        "import pipeline.stage_one.run as s\n"
        "from pipeline.stage_one import StageOneJob, run_stage_one\n"
        "real = s.mark_chunk_done if hasattr(s, 'mark_chunk_done') else None\n"
        "import pipeline.store as store\n"
        "orig = store.mark_chunk_done\n"
        "count = [0]\n"
        "def dying(*a, **k):\n"
        "    orig(*a, **k); count[0] += 1\n"
        "    if count[0] == 3: os.kill(os.getpid(), 9)\n"
        "store.mark_chunk_done = dying\n"
        "run_stage_one(StageOneJob(dataset='tiny', teacher='runs/tiny/teacher', out='stores/killed.zarr',"
        " scheduler='inline', chunk_clips=5, views=2), progress=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr[-2000:]
    summary = run_stage_one(job("stores/killed.zarr", views=2), progress=False)
    assert 0 < summary["computed_clips"] < 32  # the three finished chunks were skipped
    whole, killed = zarr.open_group("stores/whole.zarr", mode="r"), zarr.open_group("stores/killed.zarr", mode="r")
    for name in ("logits", "view_logits", "view_lambda"):
        assert np.array_equal(whole[name][:], killed[name][:], equal_nan=True), name


def test_a_corrupt_clip_lands_in_failures_and_is_masked(teacher):
    from pipeline.manifests import load_manifest
    from pipeline.store import LogitTable

    manifest = load_manifest("data_manifests/tiny")
    manifest.audio_path(manifest.clips[3]).write_bytes(b"not audio at all")
    summary = run_stage_one(job("stores/bad.zarr"), progress=False)
    assert summary["failures"] == 1
    table = LogitTable.open("stores/bad.zarr")
    row = table.rows(["c003"])[0]
    assert not table.valid_rows(np.array([row]))[0]
    assert np.isnan(table.logits_for(np.array([row]))).all()


def test_rebuilt_views_reproduce_the_stored_view_logits(teacher):
    from pipeline.audio import read_audio
    from pipeline.augment import render_view
    from pipeline.checkpoints import model_from_checkpoint
    from pipeline.config import FrontEndConfig
    from pipeline.manifests import load_manifest
    from pipeline.store import LogitTable

    run_stage_one(job("stores/v.zarr", views=3, dtype="float32"), progress=False)
    table = LogitTable.open("stores/v.zarr")
    model, _, ckpt = model_from_checkpoint(teacher)
    front_end = FrontEndConfig(**ckpt["front_end"])
    manifest = load_manifest("data_manifests/tiny")
    by_id = {c.clip_id: c for c in manifest.clips}
    mixed = 0
    for row in (0, 5, 11):
        for k in range(3):
            view = table.view_for(row, k)
            clip = manifest.clips[row]
            partner = read_audio(manifest.audio_path(by_id[view.partner])) if view.partner else None
            mixed += bool(view.partner)
            features = render_view(read_audio(manifest.audio_path(clip)), partner, view, front_end)
            with torch.no_grad():
                logits = model(features[None])[0].numpy()
            stored = table.view_logits_for(np.array([row]), np.array([k]))[0]
            assert np.allclose(logits, stored, atol=1e-4)
    assert mixed > 0


def test_refuses_a_store_from_another_teacher_unless_overwrite(teacher):
    from pipeline.store import StoreMismatch

    run_stage_one(job("stores/r.zarr"), progress=False)
    run_training("tiny", tiny_config(epochs=1, seed=5), "other", progress=False)
    with pytest.raises(StoreMismatch, match="teacher"):
        run_stage_one(job("stores/r.zarr", teacher="runs/tiny/other"), progress=False)
    run_stage_one(job("stores/r.zarr", teacher="runs/tiny/other", overwrite=True), progress=False)


def test_second_writer_is_refused(teacher):
    from pipeline.store import StoreLock, StoreLocked

    run_stage_one(job("stores/l.zarr"), progress=False)
    with StoreLock("stores/l.zarr"):
        with pytest.raises(StoreLocked):
            run_stage_one(job("stores/l.zarr"), progress=False)


def test_topk_store_keeps_each_rows_top_logits(teacher):
    from pipeline.store import LogitTable

    run_stage_one(job("stores/dense.zarr", dtype="float32"), progress=False)
    run_stage_one(job("stores/top2.zarr", dtype="float32", topk=2), progress=False)
    dense, top = LogitTable.open("stores/dense.zarr"), LogitTable.open("stores/top2.zarr")
    rows = np.arange(32)
    full, rebuilt = dense.logits_for(rows), top.logits_for(rows)
    best = np.argsort(-full, axis=1)[:, :2]
    assert np.allclose(np.take_along_axis(rebuilt, best, 1), np.take_along_axis(full, best, 1), atol=1e-3)
    assert "topk_values" in zarr.open_group("stores/top2.zarr", mode="r")


def test_a_task_carries_no_per_clip_list_and_views_share_one_partner_pool(teacher):
    """What travels with every dask task must not grow with the dataset: the spec holds settings and
    paths only, and each worker process reads the partner pool once from the manifest."""
    import dataclasses
    import pickle

    from pipeline.manifests import load_manifest
    from pipeline.stage_one.compute import worker_source
    from pipeline.stage_one.run import prepare

    spec, manifest, _, _ = prepare(job("stores/s.zarr", views=2, chunk_clips=4))
    fields = dataclasses.asdict(spec)
    assert not any(isinstance(v, (list, tuple)) and len(v) > 8 for v in fields.values())
    assert len(pickle.dumps(spec)) < 2500
    assert spec.shard_clips % 4 == 0 and spec.shard_clips > 4  # several work units per store file
    source = worker_source(spec)
    assert source is worker_source(spec)  # once per process
    assert source.partners == tuple(c.clip_id for c in load_manifest("data_manifests/tiny").select("train"))


def test_prefetching_decode_threads_write_the_same_chunk(teacher):
    """A GPU worker decodes in threads one block ahead; the rows must not depend on it."""
    import dataclasses

    from pipeline.stage_one.compute import compute_chunk
    from pipeline.stage_one.run import prepare

    results = {}
    for threads in (0, 2, -1):  # -1: the cores this process may use
        spec, _, _, _ = prepare(job(f"stores/d{threads}.zarr", views=2, chunk_clips=8, batch_size=6))
        results[threads] = compute_chunk(dataclasses.replace(spec, decode_threads=threads), 1, 8, 16)
    assert results[0]["sha256"] == results[2]["sha256"] == results[-1]["sha256"]
    assert results[0]["failures"] == results[2]["failures"] == []


def test_make_args_batch_size_sets_stage_ones_forward_batch_not_the_views(teacher, monkeypatch):
    """`make teacher-logits ARGS="batch_size=64"`: the teacher's own augmentation still draws the views."""
    import stages.teacher_logits as driver

    seen = {}

    def capture(job):
        seen["job"] = job
        return {
            "clips": 0,
            "computed_clips": 0,
            "failures": 0,
            "seconds": 0.0,
            "engine": "inline",
            "cross_fitted": False,
        }

    monkeypatch.setattr(driver, "run_stage_one", capture)
    assert driver.main(["--dataset", "tiny", "--teacher", teacher, "--views", "2", "--", "batch_size=64"]) == 0
    assert seen["job"].batch_size == 64 and seen["job"].augment is None
    driver.main(["--dataset", "tiny", "--teacher", teacher, "--", "mixup=0.3"])
    assert seen["job"].batch_size == 0 and seen["job"].augment.mixup == 0.3


def test_audio_changed_after_the_manifest_is_a_failure_in_stage_one_and_skipped_in_training(teacher):
    """A WAV cut short with its header intact (it still declares every frame), and one replaced by
    another clip's audio, after `make manifests`: stage one used to compute valid logits from the
    0.94 s that remained and store them under the manifest's fingerprint of the intact file."""
    import dataclasses

    from pipeline.manifests import load_manifest
    from pipeline.stage_two.run import train_student
    from pipeline.store import LogitTable
    from pipeline.store.writer import read_failures

    manifest = load_manifest("data_manifests/tiny")
    cut, replaced = manifest.clips[3], manifest.clips[7]
    wav = manifest.audio_path(cut).read_bytes()
    manifest.audio_path(cut).write_bytes(wav[: 44 + (len(wav) - 44) // 3])  # the header declares 3x more
    manifest.audio_path(replaced).write_bytes(manifest.audio_path(manifest.clips[11]).read_bytes())
    summary = run_stage_one(job("stores/s.zarr"), progress=False)
    assert summary["failures"] == 2
    table = LogitTable.open("stores/s.zarr")
    rows = table.rows([cut.clip_id, replaced.clip_id])
    assert not table.valid_rows(rows).any() and np.isnan(table.logits_for(rows)).all()
    group = zarr.open_group("stores/s.zarr", mode="r")
    failures = {clip: error for clip, error, _ in read_failures(group)}
    assert "truncated: the header declares" in failures[cut.clip_id]
    assert "audio differs from its manifest row" in failures[replaced.clip_id]
    assert str(Path.cwd()) not in "".join(failures.values())  # no absolute path of this machine is published

    config = dataclasses.replace(tiny_config(epochs=1), kd="clean", logits="stores/s.zarr", missing="mask")
    result = train_student("tiny", config, "student", progress=False)
    skipped = Path(result["skipped_clips"]["log"]).read_text()
    train_ids = {c.clip_id for c in manifest.select("train")}
    expected = {cut.clip_id, replaced.clip_id} & train_ids
    assert result["skipped_clips"]["count"] == len(expected) >= 1
    assert all(clip in skipped for clip in expected)


def test_a_store_carries_no_absolute_path_of_the_writers_machine(teacher, project, monkeypatch):
    """The teacher lives in another user's folder and a clip fails: the store's attrs and failure
    texts name the run folder, paths inside it and file names (with their hashes), never the
    writer's folder layout (it used to publish the checkpoint's absolute path)."""
    import json
    import shutil

    from pipeline.manifests import load_manifest
    from pipeline.store.writer import read_failures

    manifest = load_manifest("data_manifests/tiny")
    manifest.audio_path(manifest.clips[2]).write_bytes(b"not audio")
    home = project / "home" / "alice-secret"
    shutil.move("runs/tiny/teacher", home / "teacher")
    (project / "work").mkdir()
    shutil.move("data_manifests", project / "work" / "data_manifests")
    monkeypatch.chdir(project / "work")
    run_stage_one(job("stores/s.zarr", teacher=str(home / "teacher")), progress=False)
    group = zarr.open_group("stores/s.zarr", mode="r")
    published = json.dumps(group.attrs.asdict()) + "".join(error for _, error, _ in read_failures(group))
    assert "alice-secret" not in published and str(project) not in published
    teacher_attrs = group.attrs["teacher"]
    assert teacher_attrs["run"] == "teacher" and teacher_attrs["members"][0]["checkpoint"].startswith("teacher/")
    assert len(teacher_attrs["checkpoint_sha256"]) == 64


@pytest.mark.slow
def test_inline_and_local_cluster_engines_give_bit_identical_stores(teacher):
    """The inline engine ran torch with every core's thread, a cluster worker with one: reductions
    split by thread count moved the last bits of every row (3e-8 here; 7.6e-6 in 5 of 320 demo rows)."""
    from pipeline.store.format import read_strings

    run_stage_one(job("stores/inline.zarr", views=2, dtype="float32"), progress=False)
    run_stage_one(job("stores/cluster.zarr", views=2, dtype="float32", scheduler="", workers=2), progress=False)
    inline, cluster = zarr.open_group("stores/inline.zarr", mode="r"), zarr.open_group("stores/cluster.zarr", mode="r")
    assert read_strings(inline["chunk_sha256"]) == read_strings(cluster["chunk_sha256"])
    for name in ("logits", "view_logits", "valid"):
        assert np.array_equal(inline[name][:], cluster[name][:], equal_nan=True), name
    assert inline.attrs["completed"]["engine"] == "inline" and cluster.attrs["completed"]["engine"] == "local-cluster"


def test_changed_audio_is_one_error_line_under_the_error_policy(teacher):
    """CHANGED_AUDIO=error: stage one stops at the first clip whose audio no longer matches its
    manifest row, naming it, and keeps the chunks it finished."""
    from pipeline.audio import AudioChanged
    from pipeline.manifests import load_manifest
    from pipeline.store.writer import done_chunks

    manifest = load_manifest("data_manifests/tiny")
    replaced = manifest.clips[7]  # chunk 1 of 5-clip chunks
    manifest.audio_path(replaced).write_bytes(manifest.audio_path(manifest.clips[11]).read_bytes())
    with pytest.raises(AudioChanged) as caught:
        run_stage_one(job("stores/e.zarr", changed_audio="error"), progress=False)
    message = str(caught.value)
    assert f"clip {replaced.clip_id}" in message and "audio differs from its manifest row" in message
    assert "\n" not in message and "CHANGED_AUDIO=error" in message
    assert 1 in done_chunks("stores/e.zarr")  # the chunk holding it is recorded, with its failure


KILL_TRIALS_PER_KIND = 3  # 9 kill moments in all
KILL_SEED = 20261201


def two_view_job(out, **kw):
    """The fault trials' job: two augmented views per clip, so every kind of store write is interrupted."""
    return job(out, **{"views": 2, **kw})


@pytest.mark.faults
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


@pytest.mark.faults
@pytest.mark.slow
def test_killed_dask_worker_is_replaced_and_the_store_completes(teacher, project, monkeypatch):
    import pipeline.stage_one.run as stage_one
    from tests.helpers.fault_hooks import dying_compute_chunk

    marker = project / "worker-killed"
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the workers import tests.fault_hooks
    monkeypatch.setenv("CMKD_TEST_KILL_MARKER", str(marker))
    real_compute = stage_one.compute_chunk
    monkeypatch.setattr(stage_one, "compute_chunk", dying_compute_chunk)
    summary = run_stage_one(two_view_job("stores/dask.zarr", scheduler="", workers=2, views=0), progress=False)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker process really died
    assert summary["failures"] == 0 and verify_store("stores/dask.zarr") == []
    monkeypatch.setattr(stage_one, "compute_chunk", real_compute)
    run_stage_one(two_view_job("stores/inline.zarr", views=0), progress=False)
    dask, inline = arrays_of("stores/dask.zarr"), arrays_of("stores/inline.zarr")
    assert list(dask["clip_id"]) == list(inline["clip_id"]) and dask["valid"].all()
    assert np.allclose(dask["logits"].astype(np.float32), inline["logits"].astype(np.float32), atol=1e-3)


@pytest.mark.faults
def test_disk_full_mid_run_keeps_finished_chunks_and_resumes(teacher, project, small_disk, monkeypatch):
    import pipeline.store as store_api
    from stages.common import error_line

    run_stage_one(two_view_job("stores/reference.zarr"), progress=False)
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
        run_stage_one(two_view_job(str(out)), progress=False)
    assert caught.value.errno == errno.ENOSPC
    line, _ = error_line(caught.value)
    assert line.startswith(f"{out}: No space left on device") and "rerun" in line
    assert done_chunks(out) == set(marked)  # what finished is recorded ...
    problems = verify_store(out)
    assert all("not written" in p or "partial files" in p for p in problems), problems  # ... and intact
    monkeypatch.setattr(store_api, "mark_chunk_done", real_mark)
    (small_disk / "filler").unlink()
    summary = run_stage_one(two_view_job(str(out)), progress=False)
    assert summary["computed_clips"] == 32 - 5 * len(marked)
    assert_same_store(out, reference)


@pytest.mark.faults
def test_disk_full_while_creating_the_store_is_redone_after_freeing_space(teacher, project, small_disk):
    run_stage_one(two_view_job("stores/reference.zarr"), progress=False)
    filler = fill(small_disk, leave=24 * 1024)  # room for a few of the store's files, not all
    out = small_disk / "s.zarr"
    with pytest.raises(OSError):
        run_stage_one(two_view_job(str(out)), progress=False)
    assert "format" not in zarr.open_group(str(out), mode="r").attrs  # the creation really was cut short
    filler.unlink()
    run_stage_one(two_view_job(str(out)), progress=False)
    assert_same_store(out, arrays_of("stores/reference.zarr"))


@pytest.mark.faults
def test_unwritable_output_is_one_error_line_and_moves_nothing(teacher, project, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
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
