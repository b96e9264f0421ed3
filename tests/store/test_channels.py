"""Every channel labs publish through: a server without Range, a flaky server, S3 (a local S3-compatible
server, moto), and hf:// (routed to huggingface_hub's HfFileSystem, mocked at the filesystem boundary:
not tried against the real Hub, which this machine cannot reach). Servers listen on 127.0.0.1 only."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

import pipeline.store.location as location
from pipeline.store import LogitTable, StoreError, check_store
from pipeline.store.cli import main
from pipeline.store.ops import export
from pipeline.store.pinned import open_pinned
from pipeline.store.remote import RemoteReadError, filesystem, set_storage_options
from tests.helpers.http_server import FlakyHandler, PlainHandler, RangeHandler, StaticServer
from tests.helpers.store import fill_store, make_store


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """A private download cache, quick retries and timeouts, and no probe results left from other tests."""
    monkeypatch.setenv("CMKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CMKD_RETRIES", "2")
    monkeypatch.setenv("CMKD_READ_TIMEOUT", "0.5")
    monkeypatch.delenv("CMKD_STORAGE_OPTIONS", raising=False)
    monkeypatch.setattr(location, "_range_probed", {})
    monkeypatch.setattr(location, "_no_range_copies", {})
    FlakyHandler.faults, FlakyHandler.swaps, FlakyHandler.seen = {}, {}, {}
    yield
    set_storage_options(None)


@pytest.fixture
def published(tmp_path) -> tuple[Path, str]:
    root = tmp_path / "www"
    root.mkdir()
    store = make_store(root / "teacher.zarr", views=2, view_seed=7, shard_clips=8)
    fill_store(store, views=2, failed={"clip009": "unreadable header"})
    return root, export(store, root / "teacher.zarr.zip")


def test_a_server_that_ignores_range_is_read_through_a_local_copy_with_a_notice(published, capsys, tmp_path):
    root, digest = published
    local = LogitTable.open(root / "teacher.zarr")
    with StaticServer(root, PlainHandler) as server:
        for name in ("teacher.zarr", "teacher.zarr.zip"):
            url = f"{server.url}/{name}"
            assert main(["verify", url, "--digest", digest]) == 0
            captured = capsys.readouterr()
            assert "verified   yes" in captured.out and "checksum" not in captured.err
            notices = [line for line in captured.err.splitlines() if line.startswith("note:")]
            assert len(notices) == 1 and "ignores HTTP Range" in notices[0] and str(tmp_path / "cache") in notices[0]
            table = LogitTable.open(url)  # the same process reuses the copy: no second download
            np.testing.assert_array_equal(table.logits_for(np.arange(10)), local.logits_for(np.arange(10)))
            assert table.view_for(3, 1) == local.view_for(3, 1)
            assert "note:" not in capsys.readouterr().err
    probes = [line for line in RangeHandler.log if line.endswith(("zarr.json HTTP/1.1", "zip HTTP/1.1"))]
    assert probes  # the requests plain http.server saw


def test_transient_failures_are_retried_and_persistent_ones_are_one_line(published, capsys, monkeypatch):
    root, digest = published
    FlakyHandler.stall_s = 1.0  # the read timeout is 0.5 s
    with StaticServer(root, FlakyHandler) as server:
        url = f"{server.url}/teacher.zarr"
        FlakyHandler.faults = {"/logits/c/0/0": ["500"] * 20}  # a server that keeps failing one file
        with pytest.raises(RemoteReadError, match=r"teacher.zarr: reading logits/c/0/0 failed after 3 tries .*500"):
            LogitTable.open(url)
        FlakyHandler.faults = {"/valid/c/0": ["stall"] * 20}  # a server that stops answering
        with pytest.raises(RemoteReadError, match=r"reading valid/c/0 failed after 3 tries \((\w+\.)?\w*Timeout"):
            LogitTable.open(url)
        monkeypatch.setenv("CMKD_RETRIES", "4")
        faults = ["500", "drop", "stall"]  # one of each, then the file: retried until it comes
        FlakyHandler.faults = {"/logits/c/0/0": faults}
        assert check_store(url, expected_digest=digest).ok and faults == []
        monkeypatch.setenv("CMKD_RETRIES", "2")
        FlakyHandler.faults = {"/chunk_done/c/0": ["500"] * 20}
        assert main(["verify", url]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {url}: reading chunk_done/c/0 failed after 3 tries")


def test_an_unreachable_server_is_one_line_naming_the_url(capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/teacher.zarr.zip"
    assert main(["verify", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url}: cannot be reached after 3 tries") and err.count("\n") == 1


def test_a_file_swapped_mid_read_is_an_error_never_silent_rows(published, tmp_path, capsys):
    root, digest = published
    other = make_store(tmp_path / "other.zarr", views=2, view_seed=8, shard_clips=8, dtype="float32")
    fill_store(other, views=2)
    other_zip = export(other, tmp_path / "other.zarr.zip") and (tmp_path / "other.zarr.zip").read_bytes()
    other_shard = (other / "logits" / "c" / "0" / "0").read_bytes()
    with StaticServer(root, FlakyHandler) as server:
        # replaced after the reader took the recorded checksums, before it read the rows
        FlakyHandler.swaps = {"/teacher.zarr/clip_id/c/0": (1, "teacher.zarr/logits/c/0/0", other_shard)}
        with pytest.raises(StoreError, match=r"chunk 0 \(clips clip000"):
            LogitTable.open(f"{server.url}/teacher.zarr")
        FlakyHandler.seen = {}
        FlakyHandler.swaps = {"/teacher.zarr.zip": (4, "teacher.zarr.zip", other_zip)}
        url = f"{server.url}/teacher.zarr.zip"
        assert main(["verify", url, "--digest", digest]) == 1
        captured = capsys.readouterr()
        assert "verified   yes" not in captured.out and "Traceback" not in captured.err


def test_open_pinned_reads_a_remote_store_once_into_a_verified_local_copy(published, tmp_path):
    root, digest = published
    with StaticServer(root) as server:
        url = f"{server.url}/teacher.zarr.zip"
        pinned = open_pinned(url, expected_digest=digest)
        assert Path(pinned).is_file() and str(tmp_path / "cache") in pinned
        (root / "teacher.zarr.zip").write_bytes(b"replaced after verification")  # the server now serves other bytes
        assert LogitTable.open(pinned).digest == digest  # training reads the verified copy
        assert open_pinned(url, expected_digest=digest) == pinned  # the verified copy is reused, not re-fetched
        shutil.rmtree(Path(pinned).parent)
        with pytest.raises(StoreError, match="not a zip file|cannot be opened"):
            open_pinned(url, expected_digest=digest)


@pytest.fixture(scope="module")
def s3_server():
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)


def test_s3_folder_and_zip_stores_with_storage_options_on_the_command_line(published, s3_server, capsys):
    s3fs = pytest.importorskip("s3fs")
    root, digest = published
    options = {
        "endpoint_url": s3_server,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    make_bucket(s3_server, "labs")
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(root / "teacher.zarr"), "labs/teacher.zarr", recursive=True)
    fs.put(str(root / "teacher.zarr.zip"), "labs/teacher.zarr.zip")
    local = LogitTable.open(root / "teacher.zarr")
    for url in ("s3://labs/teacher.zarr", "s3://labs/teacher.zarr.zip"):
        assert main(["verify", url, "--digest", digest, "--storage-options", json.dumps(options)]) == 0
        assert "verified   yes" in capsys.readouterr().out
        table = LogitTable.open(url)  # the options stay set for the process, as for a driver
        np.testing.assert_array_equal(table.logits_for(np.arange(10)), local.logits_for(np.arange(10)))
    set_storage_options(None)
    assert main(["inspect", "s3://labs/teacher.zarr.zip"]) == 1  # no endpoint, no credentials: one line
    err = capsys.readouterr().err
    assert err.startswith("error: s3://labs/teacher.zarr.zip") and err.count("\n") == 1


def test_storage_options_from_the_environment_and_bad_json_is_one_line(published, s3_server, monkeypatch, capsys):
    pytest.importorskip("s3fs")
    root, digest = published
    import s3fs

    options = {
        "endpoint_url": s3_server,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    make_bucket(s3_server, "env")
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(root / "teacher.zarr.zip"), "env/teacher.zarr.zip")
    monkeypatch.setenv("CMKD_STORAGE_OPTIONS", json.dumps(options))
    assert check_store("s3://env/teacher.zarr.zip", expected_digest=digest).ok
    assert main(["inspect", "s3://env/teacher.zarr.zip", "--storage-options", "{anon: true}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --storage-options: not a JSON object") and err.count("\n") == 1


def test_hf_urls_go_to_huggingface_hubs_filesystem(published, monkeypatch):
    """Mocked at the filesystem boundary: HfFileSystem's file access reads a local folder laid out like
    a dataset repo. What is tested is the routing (hf:// -> fsspec -> HfFileSystem, zip and folder)."""
    hub = pytest.importorskip("huggingface_hub")
    import fsspec

    root, digest = published
    opened: list[str] = []

    class LocalHub(hub.HfFileSystem):
        def _local(self, path: str) -> Path:
            path = self._strip_protocol(path)
            prefix = "datasets/lab-a/cnn-logits/"
            assert path.startswith(prefix), path
            return root / path[len(prefix) :]

        def _open(self, path, mode="rb", **kwargs):
            opened.append(path)
            return open(self._local(path), mode)

        def cat_file(self, path, start=None, end=None, **kwargs):
            opened.append(path)
            data = self._local(path).read_bytes()
            return data[start:end]

        def info(self, path, **kwargs):
            local = self._local(path)
            return {
                "name": path,
                "size": local.stat().st_size if local.is_file() else 0,
                "type": "file" if local.is_file() else "directory",
            }

    fsspec.register_implementation("hf", LocalHub, clobber=True)
    try:
        for url in ("hf://datasets/lab-a/cnn-logits/teacher.zarr.zip", "hf://datasets/lab-a/cnn-logits/teacher.zarr"):
            opened.clear()
            assert check_store(url, expected_digest=digest).ok
            assert opened and all("lab-a/cnn-logits" in p for p in opened)
            assert isinstance(filesystem(url), hub.HfFileSystem)
    finally:
        fsspec.register_implementation("hf", hub.HfFileSystem, clobber=True)


def test_a_missing_backend_names_the_extra_to_install(capsys):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401

        pytest.skip("gcsfs is installed here")
    except ImportError:
        pass
    assert main(["inspect", "gs://bucket/teacher.zarr.zip"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: gs://bucket/teacher.zarr.zip: cannot open this URL") and "[gcs]" in err
    assert err.count("\n") == 1
