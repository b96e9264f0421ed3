"""The logit store's writer side: format, bookkeeping, identity checks, refusals, lock."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import zarr

from pipeline.augment import View
from pipeline.store import (
    FORMAT_ID,
    FORMAT_VERSION,
    LogitTable,
    StoreError,
    StoreLock,
    StoreLocked,
    StoreMismatch,
    arrays_to_view,
    check_store,
    chunk_plan,
    done_chunks,
    finalize_store,
    inspect,
    lock_path,
    mark_chunk_done,
    read_failures,
    store_is_complete,
    verify_store,
    views_to_arrays,
    write_chunk,
)
from tests.helpers.store import MIDS, chunk_views, clip_ids, fill_store, make_store, provenance, teacher_logits


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_dense(tmp_path, dtype):
    path = make_store(tmp_path / "s.zarr", dtype=dtype)
    inputs = fill_store(path)
    assert verify_store(path) == []
    table = LogitTable.open(path)
    ids = clip_ids(10)
    rows = table.rows(ids[::-1])
    np.testing.assert_array_equal(table.logits_for(rows), inputs["logits"][::-1].astype(dtype).astype(np.float32))
    assert table._arrays["logits"].dtype == np.dtype(dtype)  # float16 stays float16 in memory
    assert table.vocabulary_mids == MIDS and table.activation == "sigmoid" and table.num_views == 0
    assert table.front_end["n_mels"] == 128 and not table.cross_fitted and table.complete


def test_plain_zarr_reads_everything(tmp_path):
    path = make_store(tmp_path / "s.zarr", views=2, view_seed=7)
    fill_store(path, views=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain reader must see a clean hierarchy
        group = zarr.open_group(str(path), mode="r")
        assert zarr.open(str(path), mode="r").attrs["format"] == FORMAT_ID
        arrays = dict(group.arrays())
    assert group.attrs["format"] == FORMAT_ID and group.attrs["version"] == FORMAT_VERSION
    assert group.attrs["vocabulary"]["mids"] == MIDS
    assert group.attrs["teacher"]["metrics"]["broken"] is None  # NaN is not JSON
    assert arrays["logits"].metadata.dimension_names == ("clip", "class")
    assert arrays["view_logits"].metadata.dimension_names == ("clip", "view", "class")
    assert arrays["view_freq_masks"].shape == (10, 2, 2, 2)
    assert [str(c) for c in arrays["clip_id"][:]] == clip_ids(10)
    assert list(arrays["fold"][:3]) == [1, 0, 3]

    def bare_constant(name):
        raise AssertionError(f"zarr.json holds a bare {name}, which is not JSON")

    json.loads((path / "zarr.json").read_text(), parse_constant=bare_constant)


def test_default_files_hold_a_mebibyte_of_whole_work_chunks_and_writes_touch_one_file(tmp_path):
    from pipeline.store.format import UNIT_CLIPS

    mids = [f"/m/{i}" for i in range(200)]
    path = make_store(tmp_path / "s.zarr", n=3000, mids=mids, chunk_clips=None)
    group = zarr.open_group(str(path), mode="r")
    rows, shard = group["logits"].chunks[0], group["logits"].shards[0]
    assert rows == UNIT_CLIPS and group.attrs["chunk_clips"] == rows  # the unit of work and of checksums
    assert shard % rows == 0 and shard * 200 * 2 >= 1 << 20 and (shard - rows) * 200 * 2 < 1 << 20
    assert group.attrs["layout"]["shard_clips"] == shard and group.attrs["version"] == "1.3"
    plan = chunk_plan(path)
    assert plan[:2] == [(0, 0, rows), (1, rows, 2 * rows)] and plan[-1][2] == 3000 and len(plan) == -(-3000 // rows)
    small = make_store(tmp_path / "small.zarr", n=5, chunk_clips=None)
    assert chunk_plan(small) == [(0, 0, 5)]  # capped at the clip count
    assert zarr.open_group(str(small), mode="r")["logits"].shards is None  # one chunk: nothing to shard
    last, start, stop = plan[-1]
    write_chunk(path, last, teacher_logits(stop - start, 200, 3), np.ones(stop - start, bool))
    assert sorted((path / "logits" / "c").iterdir()) == [path / "logits" / "c" / "1"]  # one shard file written
    assert np.isnan(group["logits"][:start]).all() and not group["valid"][:start].any()
    assert np.isfinite(group["logits"][start:stop]).all()


def test_checksums_bookkeeping_and_tamper_detection(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    ids = clip_ids(10)
    logits = teacher_logits(4, len(MIDS), 5)
    first = write_chunk(path, 1, logits, np.ones(4, bool))
    twin = make_store(tmp_path / "twin.zarr")
    assert write_chunk(twin, 1, logits, np.ones(4, bool)) == first  # deterministic
    assert done_chunks(path) == set()
    mark_chunk_done(path, 1, first)
    assert done_chunks(path) == {1}
    with pytest.raises(StoreError, match="already done"):
        write_chunk(path, 1, logits, np.ones(4, bool))
    problems = verify_store(path)
    assert len(problems) == 1 and "2 of 3 chunks not written" in problems[0]
    with pytest.raises(StoreError, match="not done"):
        finalize_store(path, {"seconds": 1.0})
    fill_store(twin, finalize=False)
    assert verify_store(twin) == [
        "unfinished: every chunk is written but the run was never finalized (attrs lack 'completed')"
    ] and not store_is_complete(twin)
    completed = finalize_store(twin, {"seconds": 2.5})
    assert store_is_complete(twin) and not store_is_complete(path) and not store_is_complete(tmp_path / "none")
    assert completed["valid"] == 10 and completed["seconds"] == 2.5
    zarr.open_group(str(twin), mode="r+")["logits"][5] = np.zeros(len(MIDS))  # a change after the fact
    problems = verify_store(twin)
    assert any(
        p.startswith("chunk 1 (clips clip004, clip005, clip006, clip007): sha256 mismatch") for p in problems
    ) and not any("chunk 0" in p for p in problems)
    with pytest.raises(StoreError, match=r"twin.zarr: chunk 1 \(clips clip004, clip005, .*sha256 mismatch"):
        LogitTable.open(twin)
    assert ids[5] in LogitTable.open(twin, verify=False).index


def test_failures_are_recorded_and_masked(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    failed = {"clip002": "soundfile: unreadable header", "clip009": "file missing"}
    inputs = fill_store(path, failed=failed)
    assert verify_store(path) == []
    group = zarr.open_group(str(path), mode="r")
    assert [str(c) for c in group["failure_clip_id"][:]] == ["clip002", "clip009"]
    assert [str(e) for e in group["failure_error"][:]] == list(failed.values())
    assert list(group["chunk_failures"][:]) == [1, 0, 1]
    sha = str(group["chunk_sha256"][0])
    mark_chunk_done(path, 0, sha, [("clip002", failed["clip002"])])  # a retried mark adds nothing
    assert group["failure_clip_id"].shape == (2,)
    with pytest.raises(StoreError, match="another checksum"):
        mark_chunk_done(path, 0, "0" * 64)
    table = LogitTable.open(path)
    rows = table.rows(["clip002", "clip009", "clip003"])
    got = table.logits_for(rows)
    assert np.isnan(got[:2]).all()  # masked although the writer was handed numbers for them
    assert np.isfinite(inputs["logits"][[2, 9]]).all() and np.isfinite(got[2]).all()
    assert list(table.usable(rows)) == [False, False, True]
    summary = inspect(path)
    assert "file missing" in summary and "train: 5/6 valid" in summary and "eval: 3/4 valid" in summary
    with pytest.raises(ValueError, match="marked valid"):
        other = make_store(tmp_path / "other.zarr")
        sha = write_chunk(other, 0, inputs["logits"][:4], np.ones(4, bool))
        mark_chunk_done(other, 0, sha, [("clip001", "made up")])


def _write_in_worker(path: str, chunk: int, start: int, stop: int, lock=None) -> tuple[int, str]:
    logits = teacher_logits(10, len(MIDS), seed=1)[start:stop]
    with lock if lock is not None else contextlib.nullcontext():
        return chunk, write_chunk(path, chunk, logits, np.ones(stop - start, bool))


@pytest.mark.parametrize("layout", ["one chunk per file", "five chunks in one shard, writers take turns"])
def test_worker_processes_write_chunks_concurrently(tmp_path, layout):
    """Chunks in files of their own need no lock; chunks sharing a shard file are written one at a
    time (stage one holds a dask lock per shard; here a process lock stands for it)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    sharded = layout.startswith("five")
    path = make_store(tmp_path / "s.zarr", chunk_clips=2, shard_clips=10 if sharded else 0)
    plan = chunk_plan(path)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        lock = manager.Lock() if sharded else None
        results = list(pool.map(_write_in_worker, *zip(*[(str(path), *step, lock) for step in plan])))
    for chunk, sha in results:  # only the client marks
        mark_chunk_done(path, chunk, sha)
    finalize_store(path)
    assert verify_store(path) == [] and done_chunks(path) == set(range(5))
    np.testing.assert_array_equal(
        LogitTable.open(path).logits_for(np.arange(10)),
        teacher_logits(10, len(MIDS), seed=1).astype(np.float16).astype(np.float32),
    )


def test_interrupted_mark_leaves_no_duplicate_failures(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    group = zarr.open_group(str(path), mode="r+")
    group["failure_clip_id"].append(np.array(["clip001"], dtype=str))  # a mark that died half way
    valid = np.array([True, False, True, True])
    sha = write_chunk(path, 0, teacher_logits(4, len(MIDS), 4), valid)
    mark_chunk_done(path, 0, sha, [("clip001", "decode error")])
    assert read_failures(group) == [("clip001", "decode error", 0)]
    assert group["failure_clip_id"].shape == group["failure_chunk"].shape == (1,)


def test_writer_refuses_bad_numbers(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    logits = teacher_logits(4, len(MIDS), 6)
    logits[2, 1] = np.inf
    with pytest.raises(ValueError, match="clip002"):
        write_chunk(path, 0, logits, np.ones(4, bool))
    with pytest.raises(ValueError, match="float16"):
        write_chunk(path, 0, np.full((4, len(MIDS)), 1e6, np.float32), np.ones(4, bool))
    with pytest.raises(ValueError, match="shape"):
        write_chunk(path, 0, logits[:3], np.ones(3, bool))


def test_views_round_trip_exactly(tmp_path):
    ids = clip_ids(10)
    views = chunk_views(ids, 0, 10, 3)
    views[0][1] = View(
        seed=7, view_index=1, partner="clip004", lam=0.4375, time_shift=-3, freq_masks=((5, 0), (17, 9)), time_masks=()
    )  # a zero-width mask still round-trips
    arrays = views_to_arrays(views)
    assert all(arrays_to_view(arrays, r, k, seed=7) == views[r][k] for r in range(10) for k in range(3))
    assert any(v.partner for row in views for v in row)  # the draw exercised mixup
    with pytest.raises(ValueError, match="round-trip"):
        views_to_arrays([[View(seed=7, view_index=0, lam=0.1234567891)]])

    path = make_store(tmp_path / "s.zarr", views=3, view_seed=7)
    inputs = fill_store(path, views=3)
    table = LogitTable.open(path)
    assert table.num_views == 3 and table.view_seed == 7
    assert all(table.view_for(r, k) == chunk_views(ids, r, r + 1, 3)[0][k] for r in range(10) for k in range(3))
    rows, ks = np.array([4, 0, -1]), np.array([2, 1, 0])
    got = table.view_logits_for(rows, ks)
    np.testing.assert_array_equal(got[:2], inputs["view_logits"][[4, 0], [2, 1]].astype(np.float16).astype(np.float32))
    assert np.isnan(got[2]).all()
    with pytest.raises(ValueError, match="load_views"):
        LogitTable.open(path, load_views=False).view_for(0, 0)


@pytest.mark.parametrize("topk", [0, 2])
def test_a_single_view_can_be_masked_in_a_valid_clip(tmp_path, topk):
    path = make_store(tmp_path / "s.zarr", views=2, view_seed=7, topk=topk)
    ids = clip_ids(10)
    views = views_to_arrays(chunk_views(ids, 0, 4, 2))
    view_logits = teacher_logits(4, len(MIDS), 3, views=2)
    view_logits[1, 0] = np.nan  # its mixup partner could not be read
    partly = view_logits.copy()
    partly[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="clip002"):
        write_chunk(path, 0, teacher_logits(4, len(MIDS), 4), np.ones(4, bool), partly, views)
    sha = write_chunk(path, 0, teacher_logits(4, len(MIDS), 4), np.ones(4, bool), view_logits, views)
    mark_chunk_done(path, 0, sha)
    assert not any("chunk 0" in problem for problem in verify_store(path))
    table = LogitTable.open(path, verify=False)  # unfinished: only the first chunk is written
    got = table.view_logits_for([1, 1], [0, 1])
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all() and table.valid_rows([1])[0]


@pytest.mark.parametrize(
    "field, change",
    [
        ("teacher checkpoint_sha256", {"attrs": provenance(checkpoint="b" * 64)}),
        ("manifest sha256", {"attrs": provenance(clips_sha="e" * 64)}),
        ("front_end", {"attrs": provenance(n_mels=64)}),
        ("vocabulary sha256", {"mids": MIDS[::-1]}),
        ("views count", {"views": 2}),
        ("topk", {"topk": 2}),
        ("clip_ids", {"n": 11}),
    ],
)
def test_incompatible_store_is_refused_naming_the_field(tmp_path, field, change):
    path = make_store(tmp_path / "s.zarr")
    with pytest.raises(StoreMismatch, match=field):
        make_store(path, **change)
    make_store(path, overwrite=True, **change)  # overwrite recreates with the new identity
    assert zarr.open_group(str(path), mode="r").attrs["sessions"].__len__() == 1


def test_compatible_reopen_resumes_and_overwrite_starts_afresh(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    sha = write_chunk(path, 2, teacher_logits(2, len(MIDS), 9), np.ones(2, bool))
    mark_chunk_done(path, 2, sha)
    make_store(path)  # same inputs: resume
    assert done_chunks(path) == {2}
    assert len(zarr.open_group(str(path), mode="r").attrs["sessions"]) == 2
    make_store(path, overwrite=True)
    assert done_chunks(path) == set()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a store")
    with pytest.raises(StoreMismatch, match="not a cmkd-logits store"):
        make_store(tmp_path / "junk")


def test_lock_refuses_a_second_writer_and_takes_over_a_dead_one(tmp_path):
    path = tmp_path / "s.zarr"
    with StoreLock(path) as lock:
        assert lock_path(path).is_file()
        with pytest.raises(StoreLocked, match=f"{os.getpid()}@{socket.gethostname()}"):
            StoreLock(path).acquire()
    assert not lock_path(path).exists()

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    lock_path(path).write_text(f'{{"pid": {dead_pid}, "host": "{socket.gethostname()}", "created": "then"}}')
    with StoreLock(path) as lock:
        assert lock.took_over["pid"] == dead_pid
    lock_path(path).write_text('{"pid": 1, "host": "elsewhere.example", "created": "then"}')
    with pytest.raises(StoreLocked, match="another host"):
        StoreLock(path).acquire()
    with StoreLock(path, force=True) as lock:
        assert lock.took_over["host"] == "elsewhere.example"


def test_a_1_1_store_resumes_with_its_own_unsharded_layout(tmp_path):
    """A store the 1.1 code began (one chunk per file, 995-row chunks for AudioSet) is resumed by
    this code with its own layout and version, whatever the new defaults are."""
    path = make_store(tmp_path / "old.zarr", n=10, chunk_clips=5, shard_clips=0)
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["version"] = "1.1"  # as the 1.1 writer recorded it
    layout = group.attrs["layout"]
    assert "shard_clips" not in layout and group["logits"].shards is None
    mark_chunk_done(path, 0, write_chunk(path, 0, teacher_logits(5, len(MIDS), 1), np.ones(5, bool)))
    make_store(path, n=10, chunk_clips=None)  # the new defaults: resumed, not rebuilt
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["version"] == "1.1" and group.attrs["layout"] == layout and done_chunks(path) == {0}
    assert chunk_plan(path) == [(0, 0, 5), (1, 5, 10)]


def test_a_1_2_store_reads_verifies_resumes_and_feeds_a_1_3_subset(tmp_path, monkeypatch):
    """A store as the 1.2 code wrote it (no uint8 copies, no clip/class arrays) still reads, verifies
    and resumes as 1.2; a store derived from it is a full 1.3 store whose copies spell its strings."""
    import pipeline.store.create as create
    from pipeline.store.encodings import decode_utf8
    from pipeline.store.ops import subset

    with monkeypatch.context() as patch:
        patch.setattr(create, "FORMAT_VERSION", "1.2")
        patch.setattr(create, "text_widths", lambda *args, **kwargs: {})
        path = make_store(tmp_path / "old.zarr", n=10, views=2, view_seed=7)
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["version"] == "1.2" and "text_bytes" not in group.attrs["layout"]
    assert not {"clip", "class", "clip_id_utf8", "view_partner_utf8"} & set(group.array_keys())
    fill_store(path, views=2, finalize=False)
    make_store(path, n=10, views=2, view_seed=7)  # this code resumes it and keeps it 1.2
    finalize_store(path)
    assert zarr.open_group(str(path), mode="r").attrs["version"] == "1.2"
    assert check_store(path).ok
    old = LogitTable.open(path)
    subset(path, tmp_path / "sub.zarr", splits=["train"])
    new_group = zarr.open_group(str(tmp_path / "sub.zarr"), mode="r")
    assert new_group.attrs["version"] == "1.3" and check_store(tmp_path / "sub.zarr").ok
    partners = decode_utf8(new_group["view_partner_utf8"][:])
    np.testing.assert_array_equal(partners, new_group["view_partner"][:].astype(object))
    assert list(decode_utf8(new_group["clip_id_utf8"][:])) == [
        c for c in old.clip_ids if c in [str(x) for x in new_group["clip"][:]]
    ]


def test_verify_catches_a_uint8_copy_that_does_not_spell_its_string(tmp_path):
    """The copies other readers use are checked against the strings, and covered by the checksums."""
    from pipeline.store.encodings import encode_utf8

    path = make_store(tmp_path / "s.zarr", n=10, views=2, view_seed=7)
    fill_store(path, views=2)
    assert check_store(path).ok
    group = zarr.open_group(str(path), mode="r+")
    width = group["clip_id_utf8"].shape[1]
    group["clip_id_utf8"][0] = encode_utf8(["clip001"], width)[0]  # row 0 now reads as another clip
    problems = check_store(path).problems
    assert any("chunk 0" in p and "sha256 mismatch" in p for p in problems)
    group["class_name"][1] = "Not a cat"
    assert any("'class_name' differs from attrs.vocabulary" in p for p in check_store(path).problems)
