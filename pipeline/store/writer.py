"""Writing a store: whole-chunk writes from workers, bookkeeping from the client.

Concurrency rule: a worker writes only the array data of its own chunk (rows start:stop of the
per-clip arrays, which are chunked exactly on those rows). In a sharded store (format 1.2) several
chunks share a file and zarr rewrites the whole file to write one of them, so writers of chunks of
one shard (`Layout.shard_of`) must take turns; stage one holds a dask lock per shard (the engine's
concern: this package imports no dask). Only the client, one process, touches bookkeeping: chunk_done, chunk_sha256,
chunk_failures, the failure table and the group attrs. zarr's LocalStore writes every file to a
temporary name and renames it, so a killed process leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from ..provenance import utc_now
from .encodings import encode_utf8
from .format import ARRAY, FAILURE_ARRAYS, Layout, StoreError, json_safe, open_store, read_strings
from .integrity import checksum_names, chunk_digest, store_digest
from .location import consolidate, is_local_dir
from .nodes import array_at, attrs_text
from .topk import topk_compress
from .views import check_view_arrays

FLOAT16_MAX = float(np.finfo(np.float16).max)
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def chunk_plan(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """(chunk_index, start, stop) for every chunk; rows start:stop of the manifest order."""
    _, layout = open_store(path)
    return [(index, *layout.chunk_bounds(index)) for index in range(layout.n_chunks)]


def done_chunks(path: str | os.PathLike) -> set[int]:
    group, _ = open_store(path)
    return {int(index) for index in np.flatnonzero(array_at(group, ARRAY.chunk_done)[:])}


def _to_stored(array: np.ndarray, dtype: str, what: str) -> np.ndarray:
    if dtype == "float16":
        finite = array[np.isfinite(array)]
        if finite.size and np.abs(finite).max() > FLOAT16_MAX:
            raise ValueError(
                f"{what} holds {np.abs(finite).max():.4g}, beyond float16's range; "
                "create the store with dtype='float32'"
            )
    stored = array.astype(dtype)
    stored[np.isnan(stored)] = np.nan  # one NaN bit pattern, so equal inputs hash equally
    return stored


def _masked(values, shape: tuple[int, ...], valid: np.ndarray, clip_ids: list[str], what: str) -> np.ndarray:
    """float32 copy with NaN in failed rows; refuses non-finite numbers in rows marked valid.

    One exception: a single view of a valid clip may be entirely NaN (its mixup partner could not
    be read), so views mask one by one; a view row partly NaN or holding inf is still refused.
    """
    values = np.array(values, dtype=np.float32)
    if values.shape != shape:
        raise ValueError(f"{what} has shape {values.shape}, expected {shape}")
    per_view = values.reshape(shape[0], -1, shape[-1])
    row_ok = (np.isfinite(per_view).all(axis=-1) | np.isnan(per_view).all(axis=-1)).all(axis=-1)
    if len(shape) == 2:
        row_ok &= np.isfinite(values).all(axis=-1)
    bad = [clip_ids[row] for row in np.flatnonzero(valid & ~row_ok)]
    if bad:
        raise ValueError(
            f"{what}: non-finite values in rows marked valid, clips {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}; mark them failed (valid=False) instead"
        )
    values[~valid] = np.nan
    return values


def _chunk_data(
    layout: Layout,
    activation: str,
    logits: np.ndarray,
    valid: np.ndarray,
    teacher_index: np.ndarray,
    view_logits: np.ndarray | None,
    view_arrays: dict | None,
) -> dict[str, np.ndarray]:
    data = {ARRAY.valid: valid, ARRAY.teacher_index: teacher_index}
    if layout.topk:
        values, indices, fill = topk_compress(logits, layout.topk, activation)
        data[ARRAY.topk_values] = _to_stored(values, layout.dtype, what="logits")
        data[ARRAY.topk_indices] = indices
        data[ARRAY.topk_fill] = _to_stored(fill, layout.dtype, what="logits")
    else:
        data[ARRAY.logits] = _to_stored(logits, layout.dtype, what="logits")
    if layout.views:
        assert view_logits is not None and view_arrays is not None  # write_chunk requires both when views > 0
        if layout.topk:
            values, indices, fill = topk_compress(view_logits, layout.topk, activation)
            data[ARRAY.view_topk_values] = _to_stored(values, layout.dtype, what="view_logits")
            data[ARRAY.view_topk_indices] = indices
            data[ARRAY.view_topk_fill] = _to_stored(fill, layout.dtype, what="view_logits")
        else:
            data[ARRAY.view_logits] = _to_stored(view_logits, layout.dtype, what="view_logits")
        data[ARRAY.view_partner] = np.array(
            [[str(p) for p in row] for row in view_arrays[ARRAY.view_partner]], dtype=str
        )
        data[ARRAY.view_lambda] = np.asarray(view_arrays[ARRAY.view_lambda], dtype=np.float32)
        for name in (ARRAY.view_time_shift, ARRAY.view_freq_masks, ARRAY.view_time_masks):
            data[name] = np.asarray(view_arrays[name], dtype=np.int32)
    return data


def write_chunk(
    path: str | os.PathLike, chunk_index: int, logits, valid, view_logits=None, view_arrays=None, teacher_index=None
) -> str:
    """Write one whole chunk (worker side) and return the sha256 of the bytes written.

    logits: [n, C] float32 for rows start:stop of the chunk, NaN (or anything) in failed rows;
    valid: [n] bool, False for failed clips (their rows are stored as NaN, never filled);
    view_logits: [n, K, C] when the store has K views; view_arrays: views_to_arrays(...) of the
    chunk's rows; teacher_index: [n] int (-1 = mean of all teachers), default 0.
    """
    group, layout = open_store(path, mode="r+")
    start, stop = layout.chunk_bounds(chunk_index)
    if array_at(group, ARRAY.chunk_done)[chunk_index]:
        raise StoreError(f"{path}: chunk {chunk_index} is already done; its checksum would no longer match")
    n, num_classes = stop - start, layout.num_classes
    clip_ids = read_strings(array_at(group, ARRAY.clip_id), slice(start, stop))
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (n,):
        raise ValueError(f"valid has shape {valid.shape}, expected ({n},) for chunk {chunk_index}")
    logits = _masked(logits, (n, num_classes), valid, clip_ids, what="logits")
    if teacher_index is None:
        teacher_index = np.zeros(n, dtype=np.int16)
    teacher_index = np.asarray(teacher_index)
    if teacher_index.shape != (n,) or (teacher_index < -1).any() or (teacher_index > np.iinfo(np.int16).max).any():
        raise ValueError(f"teacher_index must be [{n}] ints in -1..32767, got shape {teacher_index.shape}")
    teacher_index = teacher_index.astype(np.int16)
    if layout.views:
        if view_logits is None or view_arrays is None:
            raise ValueError(f"the store keeps {layout.views} views per clip: view_logits and view_arrays are required")
        view_logits = _masked(view_logits, (n, layout.views, num_classes), valid, clip_ids, what="view_logits")
        check_view_arrays(view_arrays, n, layout.views, layout.max_masks)
    elif view_logits is not None:
        raise ValueError("view_logits given but the store was created with views=0")
    attrs = group.attrs.asdict()
    data = _chunk_data(
        layout, attrs_text(attrs, "activation", path), logits, valid, teacher_index, view_logits, view_arrays
    )
    return _store_rows(group, layout, attrs, start, stop, data)


def _store_rows(group, layout: Layout, attrs: dict, start: int, stop: int, data: dict[str, np.ndarray]) -> str:
    data = dict(data)
    for spec in layout.partner_twin_specs():  # 1.3: derived here, never taken from the caller
        data[spec.name] = encode_utf8(data[ARRAY.view_partner], layout.widths[ARRAY.clip_id], "mixup partner")
    for spec in [*layout.chunk_array_specs(), *layout.partner_twin_specs()]:
        array_at(group, spec.name)[start:stop] = data[spec.name]
    # the manifest columns (and 1.3's copies of them) were written at creation; the checksum covers
    # them as stored (format 1.1)
    names = checksum_names(layout, attrs)
    columns = {name: np.asarray(array_at(group, name)[start:stop]) for name in names if name not in data}
    return chunk_digest([(name, columns[name] if name in columns else data[name]) for name in names])


def write_stored_chunk(path: str | os.PathLike, chunk_index: int, data: dict[str, np.ndarray]) -> str:
    """Write a chunk from arrays already in stored form (rows read from another verified store with
    the same layout: subset, merge, export); returns its sha256 like :func:`write_chunk`."""
    group, layout = open_store(path, mode="r+")
    start, stop = layout.chunk_bounds(chunk_index)
    if array_at(group, ARRAY.chunk_done)[chunk_index]:
        raise StoreError(f"{path}: chunk {chunk_index} is already done; its checksum would no longer match")
    for spec in layout.chunk_array_specs():
        expected = (stop - start, *spec.shape[1:])
        if spec.name not in data or np.shape(data[spec.name]) != expected:
            raise ValueError(
                f"chunk {chunk_index}: {spec.name} must have shape {expected}, got "
                f"{np.shape(data[spec.name]) if spec.name in data else 'nothing'}"
            )
    return _store_rows(group, layout, group.attrs.asdict(), start, stop, data)


def read_failures(group) -> list[tuple[str, str, int]]:
    """(clip_id, error, chunk) of done chunks; drops what an interrupted mark_chunk_done left behind."""
    arrays = [array_at(group, name) for name in FAILURE_ARRAYS]  # clip id, error, chunk
    length = min(array.shape[0] for array in arrays)
    if length == 0:
        return []
    clip_ids, errors = (read_strings(a, slice(0, length)) for a in arrays[:2])
    chunks = np.asarray(arrays[2][:length])
    done = np.asarray(array_at(group, ARRAY.chunk_done)[:])
    return [
        (clip_ids[i], errors[i], int(chunks[i]))
        for i in range(length)
        if 0 <= chunks[i] < len(done) and done[chunks[i]]
    ]


def _record_failures(group, chunk_index: int, failures: list[tuple[str, str, int]]) -> None:
    arrays = {name: array_at(group, name) for name in FAILURE_ARRAYS}
    # the int column alone tells whether an earlier mark died half way; strings are read only then
    owners = np.asarray(arrays[ARRAY.failure_chunk][:])
    done = np.asarray(array_at(group, ARRAY.chunk_done)[:])
    in_range = ((owners >= 0) & (owners < len(done))).all()
    clean = len({array.shape[0] for array in arrays.values()}) == 1 and in_range and done[owners].all()
    if clean:  # the common case: append the new rows only
        if failures:
            arrays[ARRAY.failure_clip_id].append(np.array([f[0] for f in failures], dtype=str))
            arrays[ARRAY.failure_error].append(np.array([f[1] for f in failures], dtype=str))
            arrays[ARRAY.failure_chunk].append(np.array([f[2] for f in failures], dtype=np.int32))
        return
    table = [entry for entry in read_failures(group) if entry[2] != chunk_index] + failures
    columns = {
        ARRAY.failure_clip_id: np.array([f[0] for f in table], dtype=str),
        ARRAY.failure_error: np.array([f[1] for f in table], dtype=str),
        ARRAY.failure_chunk: np.array([f[2] for f in table], dtype=np.int32),
    }
    for name, column in columns.items():
        arrays[name].resize((len(table),))
        if table:
            arrays[name][:] = column


def mark_chunk_done(
    path: str | os.PathLike, chunk_index: int, sha256: str, failures: Sequence[tuple[str, str]] = ()
) -> None:
    """Record a written chunk (client side only): its checksum, its failures, then the done flag."""
    if not SHA256_PATTERN.match(str(sha256)):
        raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
    group, layout = open_store(path, mode="r+")
    start, stop = layout.chunk_bounds(chunk_index)
    if array_at(group, ARRAY.chunk_done)[chunk_index]:
        if str(array_at(group, ARRAY.chunk_sha256)[chunk_index]) == sha256:
            return  # marking twice (a retried client call) changes nothing
        raise StoreError(f"{path}: chunk {chunk_index} is already done with another checksum")
    clip_ids = read_strings(array_at(group, ARRAY.clip_id), slice(start, stop))
    valid = np.asarray(array_at(group, ARRAY.valid)[start:stop])
    row_of = {clip_id: row for row, clip_id in enumerate(clip_ids)}
    entries = []
    for clip_id, error in failures:
        if clip_id not in row_of:
            raise ValueError(f"failure for {clip_id!r}, which is not in chunk {chunk_index} (rows {start}:{stop})")
        if valid[row_of[clip_id]]:
            raise ValueError(
                f"failure for {clip_id!r} but its row is marked valid; write the chunk with "
                "valid=False for failed clips"
            )
        entries.append((clip_id, str(error), chunk_index))
    _record_failures(group, chunk_index, entries)
    array_at(group, ARRAY.chunk_sha256)[chunk_index] = sha256
    array_at(group, ARRAY.chunk_failures)[chunk_index] = len(entries)
    array_at(group, ARRAY.chunk_done)[chunk_index] = True  # last: the chunk counts only once everything above is in


def finalize_store(path: str | os.PathLike, summary: dict | None = None) -> dict:
    """Record completion (client side): counts computed from the store plus the caller's summary."""
    group, layout = open_store(path, mode="r+")
    done = np.asarray(array_at(group, ARRAY.chunk_done)[:])
    missing = np.flatnonzero(~done).tolist()
    if missing:
        raise StoreError(
            f"{path}: {len(missing)} of {layout.n_chunks} chunks are not done "
            f"(first: {missing[:20]}); run stage one again to finish them"
        )
    valid = np.asarray(array_at(group, ARRAY.valid)[:])
    completed = json_safe(dict(summary or {}))
    completed.update(
        {
            "finished": utc_now(),
            "clips": layout.n_clips,
            "valid": int(valid.sum()),
            "failures": len(read_failures(group)),
            "chunks": layout.n_chunks,
        }
    )
    completed["digest"] = store_digest(group, {**group.attrs.asdict(), "completed": completed})
    group.attrs.update({"completed": completed})
    if is_local_dir(path):
        consolidate(path)  # last: a zip or URL copy then opens with one metadata read
    return completed


def store_is_complete(path: str | os.PathLike) -> bool:
    """True for a readable store whose chunks are all done and whose run was finalized (no re-hashing)."""
    try:
        group, _ = open_store(path)
    except StoreError:
        return False
    return "completed" in group.attrs and bool(np.asarray(array_at(group, ARRAY.chunk_done)[:]).all())
