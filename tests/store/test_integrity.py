"""Every read is verified: each tamper case a receiving lab can meet, the digest, old versions, the cache."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.store import LogitTable, StoreError, check_store, verify_store
from pipeline.store.cache import default_cache_root
from pipeline.store.format import ARRAY, Layout
from pipeline.store.integrity import checksum_names, chunk_digest, store_digest
from tests.helpers import FIXTURES
from tests.helpers.store import clip_ids, fill_store, make_store


@pytest.fixture
def store(tmp_path) -> Path:
    # one chunk per file (shard_clips=0), so a test can damage exactly one chunk's file
    path = make_store(tmp_path / "s.zarr", views=2, view_seed=7, shard_clips=0)
    fill_store(path, views=2, failed={"clip009": "unreadable header"})
    return path


def chunk_file(path: Path, array: str, chunk: int) -> Path:
    parts = [str(chunk)] + ["0"] * (zarr.open_array(str(path / array), mode="r").ndim - 1)
    return path / array / "c" / Path(*parts)


def test_a_finished_store_verifies_and_its_digest_is_recorded(store):
    result = check_store(store)
    assert result.ok and result.chunks_checked == 3 and len(result.digest) == 64
    assert result.digest == result.recorded_digest
    assert check_store(store, expected_digest=result.digest.upper()).ok
    wrong = check_store(store, expected_digest="0" * 64)
    assert wrong.problems == [
        f"store digest {result.digest} is not the published {'0' * 64}: this is not the store that was published"
    ]


def test_flipped_byte_is_caught_by_verify_the_reader_and_plain_zarr(store):
    target = chunk_file(store, "logits", 1)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))
    problems = verify_store(store)
    assert len(problems) == 1 and problems[0].startswith(
        "chunk 1 (clips clip004, clip005, clip006, clip007): array 'logits' does not decode"
    )
    with pytest.raises(StoreError, match=r"s.zarr: chunk 1 \(clips clip004, .*verify=false skips"):
        LogitTable.open(store)
    with pytest.raises(ValueError, match="checksum"):  # zarr's own crc32c codec
        zarr.open_group(str(store), mode="r")["logits"][4:8]
    # rows outside the bad chunk still read when only they are asked for
    assert LogitTable.open(store, clip_ids=["clip000", "clip009"]).clip_ids == ["clip000", "clip009"]


def test_truncated_chunk_never_crashes_verify(store):
    target = chunk_file(store, "view_logits", 0)
    target.write_bytes(target.read_bytes()[:7])
    problems = verify_store(store)
    assert (
        len(problems) == 1 and "chunk 0 (clips clip000, clip001, clip002, clip003): array 'view_logits'" in problems[0]
    )


def test_deleted_chunk_reads_as_fill_and_is_caught(store):
    chunk_file(store, "logits", 2).unlink()
    assert np.isnan(zarr.open_group(str(store), mode="r")["logits"][8]).all()  # plain zarr: silent fill values
    problems = verify_store(store)
    assert len(problems) == 1 and "chunk 2 (clips clip008, clip009): sha256 mismatch" in problems[0]
    with pytest.raises(StoreError, match="chunk 2 .*clip008, clip009.*sha256 mismatch"):
        LogitTable.open(store)


def test_unfinished_store_is_refused_unless_verify_is_off(tmp_path, capsys):
    path = make_store(tmp_path / "u.zarr")
    fill_store(path, finalize=False)
    with pytest.raises(StoreError, match="never finalized"):
        LogitTable.open(path)
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    group["chunk_done"][1] = False
    with pytest.raises(StoreError, match=r"unfinished: 1 of 3 chunks not written \(first: \[1\]\)"):
        LogitTable.open(path)
    assert len(LogitTable.open(path, verify=False)) == 10
    assert "verify=false: reading without checking" in capsys.readouterr().err


def _rewrite_chunk_checksum(path: Path, chunk: int) -> None:
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    attrs = group.attrs.asdict()
    layout = Layout.from_attrs(attrs)
    start, stop = layout.chunk_bounds(chunk)
    named = [(name, np.asarray(group[name][start:stop])) for name in checksum_names(layout, attrs)]
    group["chunk_sha256"][chunk] = chunk_digest(named)


def test_swapped_rows_with_a_recomputed_chunk_sha_change_the_digest(store, tmp_path):
    published = check_store(store).digest
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    logits = np.asarray(group["logits"][0:2])
    group["logits"][0:2] = logits[::-1]  # clip000 gets clip001's teacher logits
    _rewrite_chunk_checksum(store, 0)
    problems = verify_store(store)
    assert problems == [problems[0]] and "differs from the one recorded at completion" in problems[0]
    with pytest.raises(StoreError, match="differs from the one recorded"):
        LogitTable.open(store)
    # a careful forger also rewrites the recorded digest: only the published one catches it then
    completed = dict(group.attrs["completed"])
    completed["digest"] = store_digest(group, group.attrs.asdict())
    group.attrs["completed"] = completed
    assert verify_store(store) == [] and check_store(store).digest != published
    assert "not the published" in verify_store(store, expected_digest=published)[0]


def test_split_and_fold_are_checksummed_now(store):
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    group["split"][5] = "eval"  # a training clip moved to eval
    assert "chunk 1 (clips clip004, clip005, clip006, clip007): sha256 mismatch" in verify_store(store)[0]


@pytest.mark.parametrize("edit", ["teacher", "failures"])
def test_edited_attrs_or_failure_table_are_caught(store, edit):
    group = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    if edit == "teacher":
        teacher = dict(group.attrs["teacher"])
        teacher["model"] = "ast_base"
        group.attrs["teacher"] = teacher
    else:
        group["failure_error"][0] = "nothing wrong"
    problems = verify_store(store)
    assert len(problems) == 1 and "differs from the one recorded at completion" in problems[0]


def test_store_of_format_1_0_still_reads_and_verifies(tmp_path):
    old = tmp_path / "old.zarr"
    shutil.copytree(FIXTURES / "store-v1.0.zarr", old)  # written by the 1.0 code, kept as a fixture
    result = check_store(old)
    assert result.ok and result.recorded_digest is None and result.chunks_checked == 2
    table = LogitTable.open(old)
    assert table.clip_ids == clip_ids(6) and table.fingerprints == [] and table.num_views == 1
    assert np.isnan(table.logits_for([4])).all() and table.valid_rows([0, 4]).tolist() == [True, False]
    zarr.open_group(str(old), mode="r+")["logits"][0, 0] = 99.0
    assert "chunk 0 (clips clip000, clip001, clip002, clip003): sha256 mismatch" in verify_store(old)[0]


def test_cache_is_private_keyed_by_digest_and_rechecked(store, tmp_path):
    root = tmp_path / "cache"
    first = LogitTable.open(store).share(root)
    folder = Path(first._shared["logits"]).parent
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(first._shared["logits"]).st_mode) == 0o600
    expected = first.logits_for(np.arange(10))
    # the cached file is corrupted behind the store's back: the next share rewrites it
    poisoned = np.load(first._shared["logits"]).copy()
    poisoned[:] = 0
    np.save(first._shared["logits"], poisoned)
    again = LogitTable.open(store).share(root)
    np.testing.assert_array_equal(again.logits_for(np.arange(10)), expected)
    # a store replaced by another has another digest, hence another folder
    other = make_store(tmp_path / "other.zarr", views=2, view_seed=7)
    fill_store(other, views=2)
    group = zarr.open_group(str(other), mode="r+", use_consolidated=False)
    group["logits"][0] = np.ones(6)
    _rewrite_chunk_checksum(other, 0)
    completed = dict(group.attrs["completed"])
    completed["digest"] = store_digest(group, group.attrs.asdict())
    group.attrs["completed"] = completed
    assert Path(LogitTable.open(other).share(root)._shared["logits"]).parent != folder


def test_default_cache_root_is_per_user_and_refuses_foreign_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    root = default_cache_root()
    assert root.name == f"cmkd-logit-cache-{os.getuid()}"
    real = tmp_path / "elsewhere"
    real.mkdir()
    root.symlink_to(real)  # planted by someone else before our first run
    path = make_store(tmp_path / "t.zarr")
    fill_store(path)
    with pytest.raises(StoreError, match="not a plain directory"):
        LogitTable.open(path).share()


def test_chunks_are_hashed_once_per_process(store, monkeypatch):
    import pipeline.store.reader as reader

    calls = []
    original = reader.compare_chunk
    monkeypatch.setattr(reader, "_VERIFIED_CHUNKS", set())
    monkeypatch.setattr(reader, "compare_chunk", lambda *args: calls.append(args[0]) or original(*args))
    LogitTable.open(store, clip_ids=["clip001"])
    LogitTable.open(store)
    LogitTable.open(store)
    assert sorted(calls) == [0, 1, 2]


def test_a_flipped_byte_in_a_shard_file_names_the_one_chunk_it_hit(tmp_path):
    path = make_store(tmp_path / "sh.zarr", views=2, view_seed=7, shard_clips=8)  # chunks 0 and 1 share a file
    fill_store(path, views=2)
    assert check_store(path).ok and zarr.open_array(str(path / "logits"), mode="r").shards[0] == 8
    target = path / "logits" / "c" / "0" / "0"  # the shard of rows 0:8; chunk 0's bytes come first
    data = bytearray(target.read_bytes())
    data[3] ^= 0x10
    target.write_bytes(bytes(data))
    problems = verify_store(path)
    assert len(problems) == 1 and problems[0].startswith(
        "chunk 0 (clips clip000, clip001, clip002, clip003): array 'logits' does not decode"
    )
    assert LogitTable.open(path, clip_ids=["clip004", "clip009"]).clip_ids == ["clip004", "clip009"]


def test_verify_and_inspect_say_what_a_1_0_stores_checksums_do_not_cover(tmp_path, capsys):
    from pipeline.store.cli import main

    old = tmp_path / "old.zarr"
    shutil.copytree(FIXTURES / "store-v1.0.zarr", old)
    assert check_store(old).notes[0].startswith("format 1.0: chunk checksums cover valid, teacher_index")
    for command in ("verify", "inspect"):
        assert main([command, str(old)]) == 0
        out = capsys.readouterr().out
        assert "note       format 1.0:" in out and "split and fold by nothing" in out, (command, out)


def test_a_store_relabelled_as_format_1_0_is_flagged_and_refused(store, capsys):
    """A current store relabelled 1.0 with its recorded digest removed read as a 1.0 store, silently:
    its columns and attrs then fell outside every checksum."""
    from pipeline.store.cli import main

    group = zarr.open_group(str(store), mode="r+")
    completed = dict(group.attrs["completed"])
    completed.pop("digest")
    group.attrs.update({"version": "1.0", "completed": completed})
    problems = verify_store(store)
    assert any(
        "format version 1.0 contradicts the store's contents: it holds a 'fingerprint' array" in p for p in problems
    ), problems
    with pytest.raises(StoreError, match="contradicts the store's contents"):
        LogitTable.open(store)
    assert main(["inspect", str(store)]) == 0
    assert "WARNING    format version 1.0 contradicts" in capsys.readouterr().out


@pytest.mark.security
def test_a_group_where_an_array_belongs_is_a_one_line_error(tmp_path):
    """A received store whose bookkeeping array was replaced by a group fails naming the store and the
    array (it raised zarr's or numpy's TypeError/AttributeError before)."""
    from pipeline.store import describe, done_chunks

    path = make_store(tmp_path / "s.zarr")
    fill_store(path)
    group = zarr.open_group(str(path), mode="r+")
    del group[ARRAY.chunk_done]
    group.create_group(ARRAY.chunk_done)
    for read in (done_chunks, describe):
        with pytest.raises(StoreError, match=r"s\.zarr: chunk_done is not an array"):
            read(path)
