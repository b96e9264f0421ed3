"""Stores read from elsewhere: a .zarr.zip and http:// URLs (a directory or a zip), read-only and verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.store import LogitTable, StoreError, check_store
from pipeline.store.cli import main
from pipeline.store.format import open_store
from pipeline.store.ops import export
from tests.helpers.http_server import RangeHandler, StaticServer
from tests.helpers.store import fill_store, make_store


@pytest.fixture
def published(tmp_path) -> tuple[Path, str]:
    """Lab A's folder: the store, its export and the digest it publishes."""
    root = tmp_path / "www"
    root.mkdir()
    store = make_store(root / "teacher.zarr", views=2, view_seed=7, shard_clips=0)  # one chunk per file
    fill_store(store, views=2, failed={"clip009": "unreadable header"})
    return root, export(store, root / "teacher.zarr.zip")


def test_http_directory_and_zip_read_verified_and_read_only(published, capsys):
    root, digest = published
    local = LogitTable.open(root / "teacher.zarr")
    with StaticServer(root) as server:
        for url in (f"{server.url}/teacher.zarr", f"{server.url}/teacher.zarr.zip"):
            RangeHandler.log.clear()
            assert check_store(url, expected_digest=digest).ok
            table = LogitTable.open(url)
            np.testing.assert_array_equal(table.logits_for(np.arange(10)), local.logits_for(np.arange(10)))
            assert table.view_for(3, 1) == local.view_for(3, 1) and table.digest == digest
            with pytest.raises(StoreError, match="read-only"):
                open_store(url, mode="r+")
        RangeHandler.log.clear()
        open_store(f"{server.url}/teacher.zarr")
        assert RangeHandler.log == ["GET /teacher.zarr/zarr.json HTTP/1.1"]  # consolidated: one request
        assert main(["verify", f"{server.url}/teacher.zarr.zip", "--digest", digest]) == 0
        assert "verified   yes" in capsys.readouterr().out
        assert main(["inspect", f"{server.url}/teacher.zarr"]) == 0
        assert "store      http://127.0.0.1" in capsys.readouterr().out


def test_zip_reads_use_range_requests(published):
    root, digest = published
    with StaticServer(root) as server:
        RangeHandler.log.clear()
        LogitTable.open(f"{server.url}/teacher.zarr.zip", clip_ids=["clip000"])
    gets = [line for line in RangeHandler.log if line.startswith("GET")]
    assert gets and all(line.startswith("GET /teacher.zarr.zip") for line in gets)
    assert len(RangeHandler.ranged) == len(gets)  # every read of the zip asked for a byte range


def test_export_from_a_url_reproduces_the_digest(published, tmp_path):
    root, digest = published
    with StaticServer(root) as server:
        assert export(f"{server.url}/teacher.zarr", tmp_path / "copy.zarr.zip") == digest
    assert check_store(tmp_path / "copy.zarr.zip", expected_digest=digest).ok


def test_a_tampered_file_on_the_server_is_caught(published, capsys):
    root, digest = published
    chunk = root / "teacher.zarr" / "logits" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[-6] ^= 0x01
    chunk.write_bytes(bytes(data))
    with StaticServer(root) as server:
        url = f"{server.url}/teacher.zarr"
        with pytest.raises(StoreError, match=r"teacher.zarr: chunk 0 \(clips clip000, clip001, clip002, clip003\)"):
            LogitTable.open(url)
        assert main(["verify", url, "--digest", digest]) == 1
        assert "problem    chunk 0 (clips clip000" in capsys.readouterr().out


def test_unreachable_url_is_one_line_error(capsys):
    assert main(["inspect", "http://127.0.0.1:9/none.zarr"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: http://127.0.0.1:9/none.zarr") and err.count("\n") == 1


def test_a_sharded_store_reads_over_http_and_from_its_zip(tmp_path):
    """Format 1.2 files hold several chunks: readers fetch a chunk by a Range request after the
    shard's index, which sits in the file's last bytes (a suffix range)."""
    root = tmp_path / "www"
    root.mkdir()
    store = make_store(root / "teacher.zarr", views=2, view_seed=7, shard_clips=8)
    fill_store(store, views=2)
    digest = export(store, root / "teacher.zarr.zip")
    local = LogitTable.open(store)
    with StaticServer(root) as server:
        for url in (f"{server.url}/teacher.zarr", f"{server.url}/teacher.zarr.zip"):
            assert check_store(url, expected_digest=digest).ok
            np.testing.assert_array_equal(
                LogitTable.open(url).logits_for(np.arange(10)), local.logits_for(np.arange(10))
            )
        assert export(f"{server.url}/teacher.zarr", tmp_path / "copy.zarr.zip") == digest
