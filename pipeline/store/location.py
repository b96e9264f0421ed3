"""Where a store lives: a local directory, one ``.zarr.zip`` file, or (read-only) a URL.

Every reader and command takes the same string. Local directories open without consolidated
metadata (the per-array ``zarr.json`` files are the truth and cost nothing to read); zips and URLs
use the consolidated copy that :func:`finalize_store` and ``export`` write into the root
``zarr.json``, so opening a remote store is one request. http(s) goes through fsspec with aiohttp
(pinned in requirements.txt); ``s3://`` and ``gs://`` work when the user has s3fs or gcsfs
installed. Remote and zipped stores are never written.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import zarr

from .errors import StoreError

REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "gcs://")


def is_remote(location: str | os.PathLike) -> bool:
    return str(location).startswith(REMOTE_SCHEMES)


def is_zip(location: str | os.PathLike) -> bool:
    return not is_remote(location) and str(location).endswith(".zip")


def is_local_dir(location: str | os.PathLike) -> bool:
    return not is_remote(location) and not is_zip(location)


def identity(location: str | os.PathLike) -> str:
    """One spelling per store, so "verified once per process" does not re-check a store under another name."""
    return str(location) if is_remote(location) else str(Path(location).resolve())


def _zarr_store(location, mode: str):
    text = str(location)
    if is_remote(text):
        if mode != "r":
            raise StoreError(f"{text}: remote stores are read-only")
        from zarr.storage import FsspecStore

        url = f"zip://::{text}" if text.endswith(".zip") else text  # a published .zarr.zip, read by Range requests
        try:
            return FsspecStore.from_url(url, read_only=True)
        except ImportError as exc:  # aiohttp for http(s), s3fs for s3://, gcsfs for gs://
            raise StoreError(f"{text}: cannot open this URL ({exc}); install the fsspec backend it needs") from exc
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


def open_group_at(location: str | os.PathLike, mode: str = "r") -> zarr.Group:
    store = _zarr_store(location, mode)
    consolidated = None if not isinstance(store, str) else False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zarr's note that consolidation is not in the v3 spec
            return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=consolidated)
    except (FileNotFoundError, KeyError) as exc:
        raise StoreError(f"{location}: no Zarr store here ({type(exc).__name__}: {exc})") from exc
    except OSError as exc:  # an unreachable server, a refused connection
        raise StoreError(f"{location}: cannot be read ({exc})") from exc


def consolidate(path: str | os.PathLike) -> None:
    """Write every array's metadata into the root zarr.json (local directories only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(str(path))
