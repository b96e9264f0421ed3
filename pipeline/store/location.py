"""Where a store lives: a local directory, one ``.zarr.zip`` file, or (read-only) a URL.

Every reader and command takes the same string. Local directories open without consolidated
metadata (the per-array ``zarr.json`` files are the truth and cost nothing to read); zips and URLs
use the consolidated copy that :func:`finalize_store` and ``export`` write into the root
``zarr.json``, so opening a remote store is one request. URLs go through fsspec: http(s) with
aiohttp (pinned in requirements.txt), ``s3://``, ``gs://`` and ``hf://`` with the extras ``[s3]``,
``[gcs]``, ``[hf]``; storage options, retries, the read timeout and servers that ignore Range are
:mod:`pipeline.store.remote`'s. Remote and zipped stores are never written.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import zarr

from .errors import StoreError
from .remote import RemoteReadError, describe_failure, honours_range, local_copy, protocol_of, retrying_store

AccessMode = Literal["r", "r+", "a", "w", "w-"]  # zarr's open modes; remote and zipped stores take "r" only
REMOTE_SCHEMES = ("http://", "https://", "s3://", "s3a://", "gs://", "gcs://", "hf://")
NO_RANGE_NOTICE = (
    "note: {location}: the server ignores HTTP Range requests; downloading the whole store once "
    "into {{folder}} and reading that copy"
)
_no_range_copies: dict[str, str] = {}  # URL -> local copy, so one process downloads a store once
_range_probed: dict[str, bool] = {}  # URL -> the server honours Range: probed once per process


def is_remote(location: str | os.PathLike) -> bool:
    return str(location).lower().startswith(REMOTE_SCHEMES)


def is_zip(location: str | os.PathLike) -> bool:
    return not is_remote(location) and str(location).endswith(".zip")


def is_local_dir(location: str | os.PathLike) -> bool:
    return not is_remote(location) and not is_zip(location)


def identity(location: str | os.PathLike) -> str:
    """One spelling per store, so "verified once per process" does not re-check a store under another name."""
    return str(location) if is_remote(location) else str(Path(location).resolve())


def _remote_store(text: str):
    """A read-only zarr store over fsspec, with retries; a server ignoring Range gets a local copy instead."""
    from zarr.storage import FsspecStore

    from .remote import filesystem

    if protocol_of(text) in ("http", "https"):
        if text in _no_range_copies:
            return _local_store(_no_range_copies[text], "r")
        probe = text if text.endswith(".zip") else f"{text.rstrip('/')}/zarr.json"
        if text not in _range_probed:
            _range_probed[text] = honours_range(probe)
        if not _range_probed[text]:
            copy = local_copy(text, NO_RANGE_NOTICE.format(location=text))
            _no_range_copies[text] = str(copy)
            return _local_store(str(copy), "r")
    fs = filesystem(text)  # raises StoreError naming the extra to install
    if text.endswith(".zip"):
        from fsspec.implementations.zip import ZipFileSystem

        try:
            zip_fs = ZipFileSystem(fo=fs.open(text, "rb"))
        except zipfile.BadZipFile as exc:
            raise StoreError(f"{text}: not a zip file ({exc})") from exc
        except FileNotFoundError as exc:
            raise StoreError(f"{text}: no such file ({exc})") from exc
        except Exception as exc:  # credentials, permissions, network: the backend's own exception types
            raise RemoteReadError(
                f"{text}: cannot be opened ({describe_failure(exc)}); credentials and options "
                "go in --storage-options or STORAGE_OPTIONS (a JSON object)"
            ) from exc
        store = FsspecStore(_async(zip_fs), read_only=True, path="")
    else:
        store = FsspecStore(_async(fs), read_only=True, path=fs._strip_protocol(text))
    return retrying_store(store, text)


def _async(fs):
    from fsspec.asyn import AsyncFileSystem

    if isinstance(fs, AsyncFileSystem) and fs.async_impl:
        if not fs.asynchronous:  # zarr awaits the filesystem's coroutines itself
            fs = type(fs)(**{**fs.storage_options, "asynchronous": True})
        return fs
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    return AsyncFileSystemWrapper(fs, asynchronous=True)


def _local_store(text: str, mode: str):
    if is_zip(text):
        if mode != "r":
            raise StoreError(f"{text}: a zipped store is read-only; unzip it to write")
        if not zipfile.is_zipfile(text):
            raise StoreError(f"{text}: not a zip file")
        from zarr.storage import ZipStore

        return ZipStore(text, mode="r", read_only=True)
    if not (Path(text) / "zarr.json").is_file():
        raise StoreError(f"{text}: no Zarr store here (zarr.json missing)")
    return text


def _zarr_store(location, mode: str):
    text = str(location)
    if is_remote(text):
        if mode != "r":
            raise StoreError(f"{text}: remote stores are read-only")
        return _remote_store(text)
    return _local_store(text, mode)


def open_group_at(location: str | os.PathLike, mode: AccessMode = "r") -> zarr.Group:
    store = _zarr_store(location, mode)
    consolidated = None if not isinstance(store, str) else False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zarr's note that consolidation is not in the v3 spec
            return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=consolidated)
    except StoreError:
        raise
    except (FileNotFoundError, KeyError) as exc:
        raise StoreError(f"{location}: no Zarr store here ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:  # an unreachable server, a refused connection
        raise StoreError(f"{location}: cannot be read ({exc})") from exc
    except Exception as exc:  # a zip replaced mid-read, a server's garbled reply, credentials: still one line
        if is_remote(location) or is_zip(location):
            raise RemoteReadError(
                f"{location}: cannot be opened ({describe_failure(exc)}); credentials and "
                "options go in --storage-options or STORAGE_OPTIONS (a JSON object)"
            ) from exc
        raise


def consolidate(path: str | os.PathLike) -> None:
    """Write every array's metadata into the root zarr.json (local directories only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(str(path))
