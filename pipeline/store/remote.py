"""Reading stores over a network: storage options, retries, a read timeout, servers that ignore Range,
and local copies (the no-Range fallback, and a store pinned for training).

Every remote store goes through fsspec (http(s) with aiohttp; ``s3://`` with s3fs, ``gs://`` with
gcsfs, ``hf://`` with huggingface_hub's HfFileSystem: the install extras ``[s3]``, ``[gcs]``,
``[hf]``). What this module adds, each documented in docs/store-format.md ("Where a store can live"):

- **Storage options** (credentials, ``anon``, ``endpoint_url``...): a JSON object from
  ``--storage-options`` or the ``CMKD_STORAGE_OPTIONS`` environment variable (make's
  ``STORAGE_OPTIONS``), given to the filesystem of the store's protocol.
- **Retries and a timeout.** A read that fails in a way that may pass (connection refused or dropped,
  a timeout, HTTP 429 or 5xx, a body cut short) is tried again, ``CMKD_RETRIES`` more times (default
  3) after 0.5, 1, 2 ... s; http(s) reads time out after ``CMKD_READ_TIMEOUT`` seconds without data
  (default 60). Then one error names the URL, the file and what failed.
- **Servers that ignore Range** (Python's ``http.server``): detected once per store with a 1-byte
  range request; such a store is downloaded with whole-file requests into the local cache (below)
  and read from there, with a one-line notice. A range read answered with more bytes than asked is
  refused as a transport error, never handed to zarr (where it would look like a checksum failure).
- **Local copies** live under ``$CMKD_CACHE`` (default ``$XDG_CACHE_HOME/cmkd``, else
  ``~/.cache/cmkd``), in ``stores/<sha256 of the URL>/``; :func:`local_copy` makes one and
  :func:`pipeline.store.pinned.open_pinned` builds "this location, as bytes that cannot change under the reader" on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .errors import StoreError

DEFAULT_RETRIES = 3
DEFAULT_READ_TIMEOUT_S = 60.0
_cli_options: dict = {}  # set by --storage-options; wins over the environment variable


class RemoteReadError(StoreError):
    """A transport failure (network, server, timeout, ignored Range): never reported as bad store bytes."""


def protocol_of(location: str) -> str:
    return str(location).split("://", 1)[0].lower() if "://" in str(location) else ""


def retries() -> int:
    return max(0, int(os.environ.get("CMKD_RETRIES", DEFAULT_RETRIES)))


def read_timeout() -> float:
    return float(os.environ.get("CMKD_READ_TIMEOUT", DEFAULT_READ_TIMEOUT_S))


def parse_options(text: str | None, source: str) -> dict:
    if not text or not text.strip():
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not a JSON object ({exc.msg} at column {exc.colno}): {text!r}") from None
    if not isinstance(options, dict):
        raise ValueError(f"{source}: expected a JSON object such as '{{\"anon\": true}}', got {text!r}")
    return options


def set_storage_options(text_or_dict) -> None:
    """The command line's ``--storage-options`` (a JSON object or a dict), for every store this process opens."""
    global _cli_options
    _cli_options = (
        dict(text_or_dict) if isinstance(text_or_dict, dict) else parse_options(text_or_dict, "--storage-options")
    )


def storage_options(protocol: str) -> dict:
    """Options for the filesystem of `protocol`: the environment's, then the command line's; http(s)
    also gets the read timeout unless the options set their own client arguments."""
    options = {
        **parse_options(os.environ.get("CMKD_STORAGE_OPTIONS"), "CMKD_STORAGE_OPTIONS (STORAGE_OPTIONS)"),
        **_cli_options,
    }
    if protocol in ("http", "https") and "client_kwargs" not in options:
        import aiohttp

        options["client_kwargs"] = {
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=read_timeout(), sock_read=read_timeout())
        }
    return options


def filesystem(location: str):
    """The fsspec filesystem for a URL, with its storage options; a missing backend is one clear line."""
    import fsspec

    protocol = protocol_of(location)
    try:
        return fsspec.filesystem(protocol, **storage_options(protocol))
    except ImportError as exc:
        extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "hf": "hf"}.get(protocol)
        hint = f"pip install 'cmkd-pipeline[{extra}]'" if extra else "install the fsspec backend it needs"
        raise StoreError(f"{location}: cannot open this URL ({exc}); {hint}") from exc


def is_transient(exc: BaseException) -> bool:
    """Failures a second try may not see: network, timeouts, overloaded servers, bodies cut short."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status == 429 or exc.status >= 500
    if isinstance(
        exc,
        (
            aiohttp.ClientConnectionError,
            aiohttp.ClientPayloadError,
            asyncio.TimeoutError,
            TimeoutError,
            ConnectionError,
        ),
    ):
        return True
    from fsspec.exceptions import FSTimeoutError

    if isinstance(exc, FSTimeoutError):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


def describe_failure(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backoff(attempt: int) -> float:
    return min(0.5 * 2**attempt, 8.0)


def retrying_store(store, location: str):
    """`store` (a zarr store over the network) with bounded retries, and refusing short-changed ranges."""
    from zarr.abc.store import RangeByteRequest
    from zarr.storage import WrapperStore

    class RetryingStore(WrapperStore):
        async def get(self, key, prototype, byte_range=None):
            tries = retries() + 1
            for attempt in range(tries):
                try:
                    value = await self._store.get(key, prototype, byte_range)
                except (StoreError, FileNotFoundError):
                    raise
                except Exception as exc:
                    if is_transient(exc) and attempt + 1 < tries:
                        await asyncio.sleep(backoff(attempt))
                        continue
                    again = f" after {tries} tries" if is_transient(exc) else ""
                    raise RemoteReadError(
                        f"{location}: reading {key} failed{again} ({describe_failure(exc)}); "
                        "a network or server problem, not the store's bytes "
                        "(CMKD_RETRIES and CMKD_READ_TIMEOUT set retries and timeout)"
                    ) from exc
                if (
                    isinstance(byte_range, RangeByteRequest)
                    and value is not None
                    and len(value) > byte_range.end - byte_range.start
                ):
                    raise RemoteReadError(
                        f"{location}: the server answered a range request for {key} with "
                        f"{len(value)} bytes instead of {byte_range.end - byte_range.start}: it "
                        "ignores HTTP Range; download the store and use the local copy"
                    )
                return value

    return RetryingStore(store)


def honours_range(url: str) -> bool:
    """One 1-byte range request: True when the server answers 206 (any Range-capable server does)."""
    headers = {"Range": "bytes=0-0", **storage_options("http").get("headers", {})}
    request = urllib.request.Request(url, headers=headers)
    last: BaseException | None = None
    for attempt in range(retries() + 1):
        try:
            with urllib.request.urlopen(request, timeout=read_timeout()) as reply:
                return reply.status == 206
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise StoreError(f"{url}: no such file on the server (HTTP 404)") from None
            if not (exc.code == 429 or exc.code >= 500):
                raise RemoteReadError(f"{url}: the server refused it (HTTP {exc.code} {exc.reason})") from None
            last = exc
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        if attempt < retries():
            time.sleep(backoff(attempt))
    assert last is not None  # every try that neither returned nor raised recorded its failure
    raise RemoteReadError(
        f"{url}: cannot be reached after {retries() + 1} tries ({describe_failure(last)}); "
        "check the URL and the network (CMKD_RETRIES and CMKD_READ_TIMEOUT set retries and timeout)"
    )


def cache_root() -> Path:
    if os.environ.get("CMKD_CACHE"):
        return Path(os.environ["CMKD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmkd"


def copy_folder(location: str) -> Path:
    return cache_root() / "stores" / hashlib.sha256(location.encode("utf-8")).hexdigest()[:24]


def _fetch(fs, url: str, target: Path, progress) -> None:
    """One whole file, streamed (no Range needed), retried from the start on transient failures."""
    for attempt in range(retries() + 1):
        try:
            streaming = {"block_size": 0} if protocol_of(url) in ("http", "https") else {}  # no Range needed
            with fs.open(url, "rb", **streaming) as source, open(target, "wb") as out:
                while True:
                    block = source.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
                    progress.update(len(block))
            return
        except FileNotFoundError:
            raise
        except Exception as exc:
            if not is_transient(exc) or attempt == retries():
                again = f" after {retries() + 1} tries" if is_transient(exc) else ""
                raise RemoteReadError(f"{url}: download failed{again} ({describe_failure(exc)})") from exc
            time.sleep(backoff(attempt))


def _store_keys(root_metadata: dict) -> list[str]:
    """Every file of a store from its consolidated metadata (plain HTTP cannot list a folder)."""
    import itertools
    import math

    entries = (root_metadata.get("consolidated_metadata") or {}).get("metadata")
    if not isinstance(entries, dict):
        raise StoreError(
            "the store has no consolidated metadata, so its files cannot be listed over HTTP; "
            "ask for its .zarr.zip (python -m pipeline.store export)"
        )
    keys = []
    for name, meta in entries.items():
        keys.append(f"{name}/zarr.json")
        if meta.get("node_type") != "array":
            continue
        shape = meta["shape"]
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
        encoding = meta.get("chunk_key_encoding", {})
        separator = (encoding.get("configuration") or {}).get("separator", "/")
        prefix = "c" if encoding.get("name", "default") == "default" else ""
        counts = [max(1, math.ceil(size / chunk)) for size, chunk in zip(shape, grid)]
        for index in itertools.product(*(range(count) for count in counts)):
            parts = [prefix, *map(str, index)] if prefix else list(map(str, index)) or ["0"]
            keys.append(f"{name}/{separator.join(parts)}")
    return keys


def local_copy(location: str, notice: str = "") -> Path:
    """Download a remote store (a .zarr.zip, or a directory with consolidated metadata) into the cache,
    with whole-file requests, bounded retries and a progress bar; returns the local path."""
    from tqdm import tqdm

    from pipeline.progress import bar_options

    fs = filesystem(location)
    folder = copy_folder(location)
    folder.parent.mkdir(parents=True, exist_ok=True)
    name = location.rstrip("/").rsplit("/", 1)[-1] or "store.zarr"
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    if notice:
        print(notice.format(folder=folder / name), file=sys.stderr)
    try:
        with tqdm(unit="B", unit_scale=True, desc=f"download {name}", **bar_options(stream=sys.stderr)) as progress:
            if location.endswith(".zip"):
                _fetch(fs, location, scratch / name, progress)
            else:
                root = scratch / name
                root.mkdir()
                _fetch(fs, f"{location.rstrip('/')}/zarr.json", root / "zarr.json", progress)
                for key in _store_keys(json.loads((root / "zarr.json").read_text())):
                    (root / key).parent.mkdir(parents=True, exist_ok=True)
                    try:
                        _fetch(fs, f"{location.rstrip('/')}/{key}", root / key, progress)
                    except FileNotFoundError:
                        pass  # a chunk never written reads as fill values, as zarr reads it remotely
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(scratch, folder)  # the copy appears whole or not at all
    except FileNotFoundError as exc:
        raise StoreError(f"{location}: not found on the server ({exc})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder / name
