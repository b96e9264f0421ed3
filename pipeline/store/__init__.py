"""The stage-one logit store (format "cmkd-logits", Zarr v3; the version is ``format.FORMAT_VERSION``): the one
owner of the format.

Writers: :func:`create_store` (client), :func:`write_chunk` (workers), :func:`mark_chunk_done` and
:func:`finalize_store` (client), under a :class:`StoreLock`. Readers: :class:`LogitTable` for stage
two, :func:`verify_store` and :func:`inspect`. The format is documented in docs/store-format.md and
needs no project code to read: ``zarr.open_group(path, mode="r")``. Stores at URLs: see
:mod:`pipeline.store.pinned` (:func:`open_pinned` gives a location as bytes that cannot change
between verification and training).
"""

from .create import create_store
from .describe import describe, inspect
from .errors import StoreError, StoreLocked, StoreMismatch
from .format import FORMAT_ID, FORMAT_VERSION, Layout, default_chunk_clips, strings_sha256
from .integrity import chunk_digest
from .lock import StoreLock, lock_path
from .pinned import open_pinned
from .reader import LogitTable
from .remote import RemoteReadError, set_storage_options
from .topk import rebuild_dense, topk_compress
from .verify import Verification, check_store, verify_store
from .views import arrays_to_view, views_to_arrays
from .writer import (
    chunk_plan,
    done_chunks,
    finalize_store,
    mark_chunk_done,
    read_failures,
    store_is_complete,
    write_chunk,
)

__all__ = [
    "FORMAT_ID",
    "FORMAT_VERSION",
    "Layout",
    "LogitTable",
    "RemoteReadError",
    "StoreError",
    "StoreLock",
    "StoreLocked",
    "StoreMismatch",
    "Verification",
    "arrays_to_view",
    "check_store",
    "chunk_digest",
    "chunk_plan",
    "create_store",
    "default_chunk_clips",
    "describe",
    "done_chunks",
    "finalize_store",
    "inspect",
    "lock_path",
    "mark_chunk_done",
    "open_pinned",
    "read_failures",
    "rebuild_dense",
    "set_storage_options",
    "store_is_complete",
    "strings_sha256",
    "topk_compress",
    "verify_store",
    "views_to_arrays",
    "write_chunk",
]
