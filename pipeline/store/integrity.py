"""What makes a store checkable: the bytes each chunk checksum covers, the store digest, and
reading a chunk back without ever crashing on bytes that do not decode.

Format 1.1 checksums every per-clip array of a chunk, the manifest columns (clip_id, split, fold,
fingerprint) included; 1.0 stores covered only the data arrays (valid, teacher_index, logits,
views), and are still checked that way. The **store digest** is one sha256 over the canonical
attrs (sorted-key compact JSON, without the digest itself), every chunk's done flag, checksum and
failure count, and the failure table: a lab publishes it, and any change to what a store says
changes it. The digest recorded in ``attrs.completed.digest`` catches edits made after the run; a
deliberate edit can rewrite that record too, which is what the published digest is for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .format import (
    ARRAY,
    CLASS_ARRAYS,
    COLUMN_ARRAYS,
    FAILURE_ARRAYS,
    Layout,
    StoreError,
    dump_json,
    read_strings,
    version_minor,
)
from .remote import RemoteReadError

DIGEST_HEADER = b"cmkd-logits store digest v1\n"


class ChunkUnreadable(StoreError):
    """A chunk's bytes do not decode (truncated, flipped under crc32c, not zstd at all)."""


def chunk_digest(named_arrays: list[tuple[str, np.ndarray]]) -> str:
    """sha256 of a chunk: per array, its name, dtype and shape, then its little-endian C-order bytes.

    Strings enter as a 4-byte length and their UTF-8 bytes, so the hash does not depend on how
    numpy or zarr holds them in memory.
    """
    digest = hashlib.sha256()
    for name, array in named_arrays:
        array = np.asarray(array)
        kind = "str" if array.dtype.kind in "OUT" else array.dtype.name
        digest.update(f"{name}\x00{kind}\x00{list(array.shape)}\x00".encode())
        if kind == "str":
            encoded = [str(item).encode("utf-8") for item in array.ravel()]
            digest.update(b"".join(len(e).to_bytes(4, "little") + e for e in encoded))
        else:
            digest.update(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def checksum_names(layout: Layout, attrs: dict) -> list[str]:
    """The arrays a chunk checksum covers, in hashing order, for this store's format version
    (1.3 adds the derived copies the other readers use: `clip` and the uint8 twins)."""
    data = [spec.name for spec in layout.chunk_array_specs()]
    if version_minor(attrs) < 1:
        return data
    if version_minor(attrs) < 3:
        return [*COLUMN_ARRAYS, *data]
    twins = [spec.name for spec in layout.clip_twin_specs()]
    return [*COLUMN_ARRAYS, *twins, *data, *(spec.name for spec in layout.partner_twin_specs())]


def read_rows(group, name: str, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of one array of `group` (a zarr group, or a dict of its opened arrays, which
    saves re-reading metadata per chunk); ChunkUnreadable instead of whatever the codec raises."""
    try:
        return np.asarray(group[name][start:stop])
    except RemoteReadError:
        raise  # the network failed, not the bytes: never reported as a chunk that does not decode
    except Exception as exc:  # zstd, crc32c, vlen decoders and fsspec all raise their own types
        raise ChunkUnreadable(f"array {name!r} does not decode ({type(exc).__name__}: {str(exc)[:120]})") from exc


def chunk_clip_ids(group, layout: Layout, chunk_index: int) -> list[str]:
    """The clip ids of a chunk for error messages; empty when clip_id itself does not decode."""
    start, stop = layout.chunk_bounds(chunk_index)
    try:
        return [str(c) for c in read_rows(group, ARRAY.clip_id, start, stop)]
    except ChunkUnreadable:
        return []


def name_clips(clip_ids: list[str], shown: int = 8) -> str:
    if not clip_ids:
        return "clip ids unreadable"
    more = f" ... ({len(clip_ids)} clips)" if len(clip_ids) > shown else ""
    return "clips " + ", ".join(clip_ids[:shown]) + more


@dataclass
class ChunkCheck:
    index: int
    arrays: dict[str, np.ndarray]  # what was read, {} when unreadable
    problem: str  # "" when the chunk hashes to its recorded checksum

    def message(self, location, group, layout: Layout) -> str:
        return (
            f"{location}: chunk {self.index} ({name_clips(chunk_clip_ids(group, layout, self.index))}): {self.problem}"
        )


BLOCK_BYTES = 32 << 20  # read this much per zarr call: each call costs ~1-2 ms of zarr's own overhead


def iter_chunks(group, layout: Layout, names: list[str], chunk_indices) -> Iterator[tuple[int, dict | str]]:
    """(chunk, {name: rows}) for each chunk in order, or (chunk, why) when its bytes do not decode.

    Consecutive chunks are read together, up to BLOCK_BYTES a call; a block that fails to decode is
    read again chunk by chunk, so the error names the chunk that holds the bad bytes.
    """
    row_bytes = sum(
        int(np.prod(group[n].shape[1:], dtype=np.int64)) * max(np.dtype(group[n].dtype).itemsize, 8) for n in names
    )
    per_block = max(1, BLOCK_BYTES // max(row_bytes * layout.chunk_clips, 1))
    indices = [int(i) for i in chunk_indices]
    position = 0
    while position < len(indices):
        block = [indices[position]]
        while (
            len(block) < per_block
            and position + len(block) < len(indices)
            and indices[position + len(block)] == block[-1] + 1
        ):
            block.append(indices[position + len(block)])
        position += len(block)
        start, stop = layout.chunk_bounds(block[0])[0], layout.chunk_bounds(block[-1])[1]
        try:
            rows = {name: read_rows(group, name, start, stop) for name in names}
        except ChunkUnreadable as exc:
            if len(block) == 1:
                yield block[0], str(exc)
                continue
            rows = None
        for index in block:
            lo, hi = layout.chunk_bounds(index)
            if rows is not None:
                yield index, {name: array[lo - start : hi - start] for name, array in rows.items()}
                continue
            try:
                yield index, {name: read_rows(group, name, lo, hi) for name in names}
            except ChunkUnreadable as exc:
                yield index, str(exc)


def compare_chunk(index: int, arrays: dict | str, recorded: str) -> ChunkCheck:
    """A chunk's rows (or why they did not decode) against its recorded checksum."""
    if isinstance(arrays, str):
        return ChunkCheck(index, {}, arrays)
    recomputed = chunk_digest(list(arrays.items()))
    if recomputed != recorded:
        return ChunkCheck(
            index,
            arrays,
            f"sha256 mismatch (recorded {recorded[:12] or 'nothing'}, data hashes "
            f"to {recomputed[:12]}): changed, truncated or missing after it was written",
        )
    return ChunkCheck(index, arrays, "")


def canonical_attrs(attrs: dict) -> str:
    """Sorted-key compact JSON of the attrs, without the recorded digest (which cannot cover itself)."""
    attrs = dict(attrs)
    if isinstance(attrs.get("completed"), dict):
        attrs["completed"] = {k: v for k, v in attrs["completed"].items() if k != "digest"}
    return dump_json(attrs)


def store_digest(group, attrs: dict) -> str:
    """The store digest from the recorded checksums (cheap: no chunk data is read).

    It vouches for the data only together with a check that every chunk hashes to its record.
    """
    digest = hashlib.sha256(DIGEST_HEADER)
    digest.update(canonical_attrs(attrs).encode("utf-8") + b"\n")
    try:
        done = np.asarray(group[ARRAY.chunk_done][:])
        checksums = read_strings(group[ARRAY.chunk_sha256])
        failures = np.asarray(group[ARRAY.chunk_failures][:])
        length = min(group[name].shape[0] for name in FAILURE_ARRAYS)
        table = [(name, np.asarray(group[name][:length])) for name in FAILURE_ARRAYS]
        classes = [(name, np.asarray(group[name][...])) for name in CLASS_ARRAYS] if version_minor(attrs) >= 3 else []
    except RemoteReadError:
        raise
    except Exception as exc:
        raise ChunkUnreadable(f"bookkeeping arrays do not decode ({type(exc).__name__}: {str(exc)[:120]})") from exc
    for index, (is_done, checksum, count) in enumerate(zip(done, checksums, failures)):
        digest.update(f"{index}:{int(is_done)}:{checksum}:{int(count)}\n".encode())
    if classes:  # 1.3: the vocabulary arrays, so the digest covers every array of the store
        digest.update(f"classes:{chunk_digest(classes)}\n".encode())
    digest.update(chunk_digest(table).encode())
    return digest.hexdigest()


def recorded_digest(attrs: dict) -> str | None:
    completed = attrs.get("completed")
    return completed.get("digest") if isinstance(completed, dict) else None


def completion_problem(group, attrs: dict, layout: Layout) -> str:
    """ "" for a finished store; else what is unfinished, as stage two's refusal says it."""
    try:
        done = np.asarray(group[ARRAY.chunk_done][:])
    except RemoteReadError:
        raise
    except Exception as exc:
        return f"chunk_done does not decode ({type(exc).__name__})"
    missing = np.flatnonzero(~done).tolist()
    if missing:
        return (
            f"unfinished: {len(missing)} of {layout.n_chunks} chunks not written (first: {missing[:10]}); "
            "rerun `make teacher-logits` to finish it"
        )
    if "completed" not in attrs:
        return "unfinished: every chunk is written but the run was never finalized (attrs lack 'completed')"
    return ""


def digest_problem(group, attrs: dict) -> tuple[str, str]:
    """(digest, problem): the computed digest and a line when it disagrees with the recorded one."""
    digest = store_digest(group, attrs)
    recorded = recorded_digest(attrs)
    if recorded is None:
        if version_minor(attrs) >= 1 and "completed" in attrs:
            return digest, "attrs.completed has no digest: it was removed or the store edited by hand"
        return digest, ""
    if recorded != digest:
        return digest, (
            f"store digest {digest[:16]} differs from the one recorded at completion "
            f"{str(recorded)[:16]}: attrs, checksums or the failure table were edited afterwards"
        )
    return digest, ""


def pinned_digests(pinned: str | None) -> list[str]:
    """The digests a user pinned (DIGEST=<hex>, comma-separated for per-fold stores), checked to be
    whole sha256 hex strings: a prefix would pin less than it seems."""
    wanted = [d.strip().lower() for d in (pinned or "").split(",") if d.strip()]
    bad = [d for d in wanted if len(d) != 64 or any(c not in "0123456789abcdef" for c in d)]
    if bad:
        raise StoreError(
            f"DIGEST {bad[0]!r} is not a store digest (64 hexadecimal digits, as `export` and `verify` print it)"
        )
    return wanted


def pin_problem(digest: str, pinned: str | None) -> str:
    """ "" when nothing is pinned or the store's digest is a pinned one; else the refusal."""
    wanted = pinned_digests(pinned)
    if not wanted or digest in wanted:
        return ""
    shown = wanted[0] if len(wanted) == 1 else f"one of {', '.join(w[:16] for w in wanted)}"
    return f"store digest {digest} is not the published {shown}: this is not the store that was published"


def uncovered_note(attrs: dict) -> str:
    """What an old format's checksums leave unchecked ("" for 1.1 and later): said by verify and inspect."""
    if version_minor(attrs) >= 1:
        return ""
    return (
        "format 1.0: chunk checksums cover valid, teacher_index and the logits/views only; clip_id is covered "
        "by clips.sha256 alone, split and fold by nothing, and no digest was recorded, so the attrs and "
        "these columns are vouched for only by a digest its publisher gave (--digest / DIGEST=)"
    )


def format_contradictions(group, layout: Layout, attrs: dict) -> list[str]:
    """A version label that its contents contradict: e.g. a 1.2 store relabelled 1.0 (whose weaker
    checksum definition would then leave its columns and attrs unchecked)."""
    minor, version = version_minor(attrs), attrs.get("version")
    found = []
    if minor < 1:
        if ARRAY.fingerprint in group:
            found.append("it holds a 'fingerprint' array (format 1.1 and later)")
        if recorded_digest(attrs) is not None:
            found.append("it records completed.digest (format 1.1 and later)")
    if minor < 2 and layout.sharded:
        found.append(f"its arrays are sharded ({layout.shard_clips} rows per file, format 1.2)")
    if not found:
        return []
    return [
        (
            f"format version {version} contradicts the store's contents: {'; '.join(found)}; it was relabelled "
            "after writing (a relabelled store's checksums cover less than its writer's did)"
        )
    ]
