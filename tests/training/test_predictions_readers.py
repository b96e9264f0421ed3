"""Predictions keep clip ids as strings for readers this project did not write (pandas, DuckDB) and use
the store's id column name, so a join with the store needs no cast."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import zarr

from pipeline.training.outputs import ID_COLUMN, read_predictions, write_predictions
from tests.helpers.store import MIDS, fill_store, make_store


def test_numeric_clip_ids_stay_strings_in_pandas_and_duckdb(tmp_path):
    ids = ["1314", "0042", "7", "387554"]  # FSD50K-like ids; "0042" would lose its zero as a number
    logits = np.arange(len(ids) * len(MIDS), dtype=np.float32).reshape(len(ids), len(MIDS)) / 7
    path = tmp_path / "eval_predictions.parquet"
    write_predictions(path, SimpleNamespace(clip_ids=ids, logits=logits), MIDS)

    frame = pd.read_parquet(path)  # plain pandas, no project code
    assert list(frame[ID_COLUMN]) == ids and pd.api.types.is_string_dtype(frame[ID_COLUMN])
    np.testing.assert_array_equal(frame[MIDS].to_numpy(), logits)
    assert list(read_predictions(path).index) == ids

    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT {ID_COLUMN}, typeof({ID_COLUMN}) FROM read_parquet('{path}')").fetchall()
    assert [r[0] for r in rows] == ids and {r[1] for r in rows} == {"VARCHAR"}


def test_predictions_join_the_store_on_the_same_column_without_a_cast(tmp_path):
    store = make_store(tmp_path / "s.zarr", n=6)
    fill_store(store)
    group = zarr.open_group(str(store), mode="r")
    ids = [str(c) for c in group[ID_COLUMN][:]]  # the store's join key has the same name
    path = tmp_path / "eval_predictions.parquet"
    write_predictions(path, SimpleNamespace(clip_ids=ids[::-1], logits=np.zeros((6, len(MIDS)), np.float32)), MIDS)
    duckdb = pytest.importorskip("duckdb")
    store_ids = pd.DataFrame({ID_COLUMN: ids, "row": range(6)})  # noqa: F841 (DuckDB reads it by name)
    joined = duckdb.sql(
        f"SELECT p.{ID_COLUMN}, s.row FROM read_parquet('{path}') p JOIN store_ids s USING ({ID_COLUMN}) ORDER BY s.row"
    ).fetchall()
    assert [r[0] for r in joined] == ids
