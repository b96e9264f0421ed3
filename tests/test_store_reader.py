"""The logit store's reader side: the top-k rebuild rule, LogitTable, versions, the documented plain-zarr recipe."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.store import LogitTable, StoreError, rebuild_dense, topk_compress, verify_store

from .store_helpers import MIDS, clip_ids, fill_store, make_store, teacher_logits


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
    text = (Path(__file__).resolve().parents[1] / "docs" / "store-format.md").read_text()
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
