"""The logit store's reader side: the top-k rebuild rule, LogitTable, versions, the documented plain-zarr recipe;
the reader gives back what was written for any clip subset and layout (marker `properties`), and never
unpickles what is offered as a store (marker `security`)."""

from __future__ import annotations

import math
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.checkpoints import load_checkpoint
from pipeline.models.checkpoint_import import CheckpointImportError
from pipeline.store import LogitTable, StoreError, rebuild_dense, topk_compress, verify_store
from tests.helpers import REPO_ROOT
from tests.helpers.checkpoints import Hostile
from tests.helpers.store import MIDS, chunk_views, clip_ids, fill_store, make_store, teacher_logits


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_topk_rebuild_rule(activation):
    dense = teacher_logits(20, 30, 8).astype(np.float64)
    dense[3] = np.nan  # a failed clip
    k = 5
    values, indices, fill = topk_compress(dense, k, activation)
    rebuilt = rebuild_dense(values, indices, fill, 30)
    assert np.isnan(rebuilt[3]).all() and (indices[3] == -1).all()
    for row in [r for r in range(20) if r != 3]:
        order = np.argsort(-dense[row], kind="stable")
        top, rest = order[:k], order[k:]
        np.testing.assert_allclose(rebuilt[row, top], dense[row, top], rtol=1e-6)
        assert (rebuilt[row, rest] == fill[row]).all() and fill[row] <= dense[row, order[k]] + 1e-6
        if activation == "softmax":  # kept classes keep their exact dense probability

            def softmax(z):
                return np.exp(z - z.max()) / np.exp(z - z.max()).sum()

            np.testing.assert_allclose(
                softmax(rebuilt[row].astype(np.float64))[top], softmax(dense[row])[top], rtol=1e-5
            )
        else:  # the dropped classes keep their summed probability

            def sigmoid(z):
                return 1 / (1 + np.exp(-z))

            assert math.isclose(
                sigmoid(rebuilt[row, rest].astype(np.float64)).sum(), sigmoid(dense[row, rest]).sum(), rel_tol=1e-5
            )


def test_topk_store_rebuilds_dense_rows(tmp_path):
    mids = [f"/m/{i}" for i in range(12)]
    path = make_store(tmp_path / "s.zarr", mids=mids, topk=3, views=1, view_seed=7)
    inputs = fill_store(path, views=1, failed={"clip004": "gone"})
    assert verify_store(path) == []
    group = zarr.open_group(str(path), mode="r")
    assert "logits" not in group and group["topk_indices"].dtype == np.int16 and group["topk_values"].shape == (10, 3)
    table = LogitTable.open(path)
    got = table.logits_for(np.arange(10))
    assert np.isnan(got[4]).all()
    for row in [0, 7]:
        top = np.argsort(-inputs["logits"][row], kind="stable")[:3]
        np.testing.assert_array_equal(got[row, top], inputs["logits"][row, top].astype(np.float16).astype(np.float32))
        assert len(np.unique(np.delete(got[row], top))) == 1
    view_row = table.view_logits_for([2], [0])[0]
    top = np.argsort(-inputs["view_logits"][2, 0], kind="stable")[:3]
    np.testing.assert_array_equal(view_row[top], inputs["view_logits"][2, 0, top].astype(np.float16))


def test_logit_table_lookup_subset_and_shared_mmap(tmp_path):
    path = make_store(tmp_path / "s.zarr", views=1, view_seed=7)
    inputs = fill_store(path, views=1)
    table = LogitTable.open(path)
    assert list(table.rows(["clip003", "nope", "clip000"])) == [3, -1, 0]
    subset = LogitTable.open(path, clip_ids=["clip008", "clip001", "absent"])
    assert subset.clip_ids == ["clip001", "clip008"] and list(subset.rows(["clip008", "clip002"])) == [1, -1]
    np.testing.assert_array_equal(subset.logits_for([1]), table.logits_for([8]))
    assert subset.view_for(1, 0) == table.view_for(8, 0)

    before = table.logits_for(np.arange(10))
    table.share(tmp_path / "cache")
    assert isinstance(table._arrays["logits"], np.memmap) and table.shared
    np.testing.assert_array_equal(table.logits_for(np.arange(10)), before)
    clone = pickle.loads(pickle.dumps(table))
    assert isinstance(clone._arrays["logits"], np.memmap)
    np.testing.assert_array_equal(clone.logits_for(np.arange(10)), before)
    assert clone.view_for(3, 0) == table.view_for(3, 0)
    assert clone._arrays["logits"].filename == table._arrays["logits"].filename  # same pages, no copy
    assert inputs["logits"].shape == before.shape


def test_newer_major_version_is_refused(tmp_path):
    path = make_store(tmp_path / "s.zarr")
    zarr.open_group(str(path), mode="r+").attrs.update({"version": "2.0"})
    with pytest.raises(StoreError, match="version '2.0'"):
        LogitTable.open(path)
    assert "version" in verify_store(path)[0]


def documented_plain_zarr_example() -> str:
    text = (REPO_ROOT / "docs" / "store-format.md").read_text()
    block = text.split("<!-- plain-zarr example", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("topk", [0, 2])
def test_documented_plain_zarr_example_matches_the_reader(tmp_path, topk):
    path = make_store(tmp_path / "s.zarr", topk=topk)
    fill_store(path, failed={"clip005": "gone"})
    namespace = {"STORE": str(path)}
    exec(documented_plain_zarr_example(), namespace)  # the docs' ten lines, verbatim
    expected = LogitTable.open(path).logits_for(np.arange(10))
    np.testing.assert_array_equal(namespace["logits"], expected)
    assert namespace["clip_ids"] == clip_ids(10) and not namespace["valid"][5]
    assert namespace["probabilities"].shape == (10, len(MIDS))


@pytest.mark.security
def test_efficientat_style_pickled_index_is_never_unpickled(project, teacher_store):
    """EfficientAT ships logits as .npy plus a pickled filename->row map. This project imports neither
    format: offered where a store or a checkpoint is expected, or planted in the shared logit cache
    that DataLoader workers map, the pickle is refused and never runs."""
    from pipeline.store import LogitTable, StoreError

    marker = project / "marker"
    index = project / "index.pkl"
    index.write_bytes(pickle.dumps({"a.wav": 0, "payload": Hostile(marker)}))
    with pytest.raises(StoreError, match="no Zarr store here"):
        LogitTable.open(index)
    with pytest.raises(CheckpointImportError):
        load_checkpoint(index)
    cache = project / "cache"
    shared = LogitTable.open(teacher_store).share(cache)
    planted = Path(next(iter(shared._shared.values())))
    np.save(planted, np.array([Hostile(marker)], dtype=object), allow_pickle=True)
    try:  # the cache re-checks its files: a planted one is refused or replaced, never unpickled
        again = LogitTable.open(teacher_store).share(cache)
    except ValueError as error:
        assert "pickle" in str(error) or "Python objects" in str(error)
    else:
        rows = np.arange(len(again))
        np.testing.assert_array_equal(again.logits_for(rows), LogitTable.open(teacher_store).logits_for(rows))
    assert not marker.exists()


@pytest.mark.properties
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 16),
    chunk=st.integers(1, 7),
    views=st.integers(0, 3),
    dtype=st.sampled_from(["float32", "float16"]),
    topk=st.sampled_from([0, 0, 2]),
    data=st.data(),
)  # 2 of the helpers' 6 classes
def test_store_reader_gives_back_what_was_written(n, chunk, views, dtype, topk, data):
    ids = clip_ids(n)
    failed = data.draw(st.sets(st.sampled_from(ids), max_size=n // 3))
    subset = data.draw(st.lists(st.sampled_from(ids + ["not-there"]), max_size=n + 2))
    with tempfile.TemporaryDirectory() as folder:
        path = make_store(
            Path(folder) / "s.zarr", n=n, chunk_clips=chunk, views=views, dtype=dtype, topk=topk, view_seed=7
        )  # the seed tests.helpers.store.chunk_views draws with
        written = fill_store(path, views=views, failed={c: "RuntimeError: unreadable" for c in failed})
        from pipeline.store import LogitTable

        table = LogitTable.open(path, clip_ids=subset or None)
        wanted = subset or ids
        rows = table.rows(wanted)
        assert set(table.clip_ids) == ({c for c in wanted if c in ids})
        logits = table.logits_for(rows)
        for clip, row, got in zip(wanted, rows, logits):
            if clip not in ids or clip in failed:
                assert np.isnan(got).all() and (row < 0 or not table.valid_rows(np.array([row]))[0])
                continue
            expected = written["logits"][ids.index(clip)].astype(dtype).astype(np.float32)
            if topk:  # compact rows keep each row's top-k exactly
                top = np.argsort(-expected, kind="stable")[:topk]
                assert np.array_equal(got[top], expected[top])
            else:
                assert np.array_equal(got, expected)
            for k in range(views):
                view = table.view_for(int(row), k)
                assert view == chunk_views(ids, ids.index(clip), ids.index(clip) + 1, views)[0][k]
                stored = table.view_logits_for(np.array([row]), np.array([k]))[0]
                expected_view = written["view_logits"][ids.index(clip), k].astype(dtype).astype(np.float32)
                assert np.array_equal(
                    stored if not topk else stored[np.argsort(-expected_view, kind="stable")[:topk]],
                    expected_view if not topk else expected_view[np.argsort(-expected_view, kind="stable")[:topk]],
                )


@pytest.mark.properties
def test_a_subset_matching_no_clip_reads_as_missing(tmp_path):
    """The case hypothesis found: a table opened on unknown ids used to raise IndexError."""
    from pipeline.store import LogitTable

    path = make_store(tmp_path / "s.zarr", n=3, chunk_clips=1)
    fill_store(path)
    table = LogitTable.open(path, clip_ids=["not-there"])
    assert len(table) == 0 and np.isnan(table.logits_for(table.rows(["not-there"]))).all()
