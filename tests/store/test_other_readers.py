"""Readers this project did not write: TensorStore (an independent zarr v3 implementation) and xarray
read a store written by stage one and agree with the project's reader (store format 1.3)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.store import LogitTable, check_store
from pipeline.store.encodings import decode_utf8
from pipeline.training import run_training
from tests.helpers import REPO_ROOT
from tests.helpers.tiny_project import tiny_config

ts = pytest.importorskip("tensorstore")
xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def stage_one_store(tmp_path_factory) -> Path:
    """A 1.3 store with two views, written by stage one from a one-epoch teacher on the tiny dataset."""
    import os

    from pipeline.testing import write_tiny_dataset

    root = tmp_path_factory.mktemp("readers")
    write_tiny_dataset(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        run_training("tiny", tiny_config(epochs=1, mixup=0.5, freqm=4, timem=8), "teacher", progress=False)
        run_stage_one(
            StageOneJob(
                dataset="tiny",
                teacher="runs/tiny/teacher",
                out="stores/t.zarr",
                scheduler="inline",
                chunk_clips=5,
                views=2,
            ),
            progress=False,
        )
    finally:
        os.chdir(cwd)
    return root / "stores" / "t.zarr"


def ts_read(store: Path, name: str) -> np.ndarray:
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(store / name)}}
    return ts.open(spec, read=True).result().read().result()


def test_tensorstore_reads_logits_ids_and_replay_data_like_the_project(stage_one_store):
    table = LogitTable.open(stage_one_store)
    group = zarr.open_group(str(stage_one_store), mode="r")
    assert group.attrs["version"] == "1.3"
    ids = [str(c) for c in decode_utf8(ts_read(stage_one_store, "clip_id_utf8"))]
    assert ids == table.clip_ids
    logits = ts_read(stage_one_store, "logits")
    assert logits.dtype == np.float16
    np.testing.assert_array_equal(logits.astype(np.float32), table.logits_for(np.arange(len(ids))))
    np.testing.assert_array_equal(
        ts_read(stage_one_store, "view_logits").astype(np.float32),
        np.stack([table.view_logits_for(np.arange(len(ids)), np.full(len(ids), k)) for k in range(2)], axis=1),
    )
    assert [str(s) for s in decode_utf8(ts_read(stage_one_store, "split_utf8"))] == [str(s) for s in group["split"][:]]
    np.testing.assert_array_equal(ts_read(stage_one_store, "fold"), group["fold"][:])
    assert list(decode_utf8(ts_read(stage_one_store, "class_utf8"))) == table.vocabulary_mids
    assert list(decode_utf8(ts_read(stage_one_store, "class_name_utf8"))) == group.attrs["vocabulary"]["names"]
    partners = decode_utf8(ts_read(stage_one_store, "view_partner_utf8"))
    lambdas = ts_read(stage_one_store, "view_lambda")
    for row in range(len(ids)):
        for k in range(2):
            view = table.view_for(row, k)
            assert (view.partner or "") == str(partners[row, k])
            assert round(float(lambdas[row, k]), 6) == view.lam
    assert partners[partners != ""].size > 0  # mixup=0.5: some views name a partner


def test_no_zarr_string_type_is_readable_by_tensorstore(tmp_path):
    """Why 1.3 adds uint8 copies instead of switching the string arrays to another zarr string type."""
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's note that the fixed-width types are unspecified in v3
        for name, dtype in (("vlen", str), ("fixed_bytes", "S8"), ("fixed_utf32", "U8")):
            group.create_array(name, shape=(2,), dtype=dtype)
    for name in ("vlen", "fixed_bytes", "fixed_utf32"):
        with pytest.raises(ValueError, match="data_type"):
            ts_read(tmp_path / "s.zarr", name)


def test_tensorstore_catches_a_flipped_byte(stage_one_store, tmp_path):
    import shutil

    copy = tmp_path / "t.zarr"
    shutil.copytree(stage_one_store, copy)
    chunk = max((p for p in (copy / "logits" / "c").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 3] ^= 0x01
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="DATA_LOSS.*[Dd]igest mismatch"):
        ts_read(copy, "logits")
    assert not check_store(copy).ok  # the project's own check agrees


def test_xarray_opens_it_with_clip_and_class_coordinates(stage_one_store):
    table = LogitTable.open(stage_one_store)
    ds = xr.open_zarr(str(stage_one_store), consolidated=True, zarr_format=3)
    assert list(ds.indexes) == sorted(ds.indexes) and {"clip", "class"} <= set(ds.indexes)
    assert [str(c) for c in ds["clip"].values] == table.clip_ids
    assert [str(c) for c in ds["class"].values] == table.vocabulary_mids
    row = 7
    clip_id, mid = table.clip_ids[row], table.vocabulary_mids[2]
    value = ds.logits.sel({"clip": clip_id, "class": mid}).values  # `class` is a Python keyword: dict form
    assert float(value) == float(table.logits_for(np.array([row]))[0, 2])
    np.testing.assert_array_equal(ds.logits.values.astype(np.float32), table.logits_for(np.arange(len(table.clip_ids))))
    assert [str(n) for n in ds["class_name"].values] == ds.attrs["vocabulary"]["names"]
    assert ds["fold"].dtype == np.int8 and ds["valid"].dtype == bool  # fill values are not taken as masks


def test_students_from_a_local_store_and_from_its_zip_on_a_server_without_range_are_identical(
    stage_one_store, monkeypatch, capsys
):
    """`make student LOGITS=<URL>` on Python's own http.server (which ignores Range): the store is read
    through a local copy with one notice, never a checksum error, and trains the same student."""
    import pipeline.store.location as location
    from pipeline.config import apply_overrides
    from pipeline.stage_two.run import train_student
    from pipeline.store.ops import export
    from tests.helpers.http_server import PlainHandler, StaticServer

    root = stage_one_store.parents[1]
    monkeypatch.chdir(root)
    monkeypatch.setenv("CMKD_CACHE", str(root / "cache"))
    monkeypatch.setattr(location, "_range_probed", {})
    monkeypatch.setattr(location, "_no_range_copies", {})
    (root / "www").mkdir(exist_ok=True)
    export(stage_one_store, root / "www" / "t.zarr.zip")
    summaries = {}
    with StaticServer(root / "www", PlainHandler) as server:
        for name, logits in (("local", "stores/t.zarr"), ("url", f"{server.url}/t.zarr.zip")):
            config = apply_overrides(tiny_config(epochs=1), [f"logits={logits}", "kd=clean"])
            summaries[name] = train_student("tiny", config, f"student-{name}", progress=False)
    err = capsys.readouterr().err
    assert err.count("ignores HTTP Range") == 1 and "checksum" not in err
    assert summaries["url"]["map"] == summaries["local"]["map"]
    import torch

    weights = [
        torch.load(root / "runs" / "tiny" / f"student-{n}" / "checkpoints" / "final.pt", weights_only=True)
        for n in ("local", "url")
    ]
    first, second = (w.get("model", w) for w in weights)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_the_documented_tensorstore_and_xarray_recipes_run(stage_one_store):
    """docs/store-format.md's two snippets, run as written on a stage-one store."""
    import re

    text = (REPO_ROOT / "docs" / "store-format.md").read_text()
    section = text[text.index("## Other readers (format 1.3)") :]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    table = LogitTable.open(stage_one_store)
    names = {"STORE": str(stage_one_store)}
    exec(blocks[0], names)
    assert names["clip_ids"] == table.clip_ids and names["mids"] == table.vocabulary_mids
    np.testing.assert_array_equal(names["logits"], table.logits_for(np.arange(len(table.clip_ids))))
    xarray_names = {"STORE": str(stage_one_store)}
    exec(
        blocks[1].replace('"1314"', repr(table.clip_ids[3])).replace('"/m/0bt9lr"', repr(table.vocabulary_mids[1])),
        xarray_names,
    )
    assert list(xarray_names["ds"]["class_name"].values) == xarray_names["ds"].attrs["vocabulary"]["names"]
