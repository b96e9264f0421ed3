"""The cmkd-logits store format: identifiers, errors, the layout record and the array schema.

Everything that names an array, a dtype, a chunk shape or an attrs key lives here, so the writer,
the reader and the verifier cannot drift apart. The prose version is docs/store-format.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from .errors import StoreError
from .location import AccessMode, open_group_at

FORMAT_ID = "cmkd-logits"
FORMAT_VERSION = "1.3"  # 1.1 added: fingerprint, checksummed columns, crc32c codecs, completed.digest;
# 1.2: per-clip arrays sharded (a shard file holds several chunks; the chunk stays the unit of work and checksum);
# 1.3: uint8 UTF-8 twins of the string arrays (TensorStore) and `clip` / `class` index coordinates (xarray)
ACTIVATIONS = ("sigmoid", "softmax")
DTYPES = ("float16", "float32")
TARGET_CHUNK_BYTES = 1 << 20  # small files mean many files and slow listing on shared filesystems
# rows per chunk (= per stage-one task) by default: small enough that even a demo-sized dataset spreads
# over every worker, large enough that a task's fixed cost (~10 ms) is noise against 256 teacher forwards
UNIT_CLIPS = 256
FAILURE_CHUNK = 4096
MAX_CLASSES = np.iinfo(np.int16).max  # topk_indices are int16


@dataclass(frozen=True)
class ArrayNames:
    """Every array name of the schema, spelled once: other modules write ``ARRAY.clip_id``, not ``"clip_id"``.

    A namespace rather than ~35 constants: one import serves a module, the attribute reads exactly like
    the name on disk (as docs/store-format.md and a plain zarr reader spell it), and a misspelt name is
    a mypy error (an AttributeError) rather than a KeyError from a missing array deep in a run. Each value
    is its attribute's name (``class_`` is ``class``, a keyword); tests/store/test_array_names.py checks that.
    """

    # the manifest's columns, one row per clip
    clip_id: str = "clip_id"
    split: str = "split"
    fold: str = "fold"
    fingerprint: str = "fingerprint"
    # 1.3: xarray's index coordinate of dim `clip` (a copy of clip_id) and the uint8 UTF-8 twins (TensorStore)
    clip: str = "clip"
    clip_id_utf8: str = "clip_id_utf8"
    split_utf8: str = "split_utf8"
    fingerprint_utf8: str = "fingerprint_utf8"
    # per chunk: the teacher's output, dense or top-k, for the clean clip and its views
    valid: str = "valid"
    teacher_index: str = "teacher_index"
    logits: str = "logits"
    topk_values: str = "topk_values"
    topk_indices: str = "topk_indices"
    topk_fill: str = "topk_fill"
    view_logits: str = "view_logits"
    view_topk_values: str = "view_topk_values"
    view_topk_indices: str = "view_topk_indices"
    view_topk_fill: str = "view_topk_fill"
    # per chunk: each view's augmentation parameters (mixup partner, lambda, shift, SpecAugment masks)
    view_partner: str = "view_partner"
    view_lambda: str = "view_lambda"
    view_time_shift: str = "view_time_shift"
    view_freq_masks: str = "view_freq_masks"
    view_time_masks: str = "view_time_masks"
    view_partner_utf8: str = "view_partner_utf8"
    # 1.3: the vocabulary as arrays (xarray's `class` coordinate, names, uint8 twins)
    class_: str = "class"  # `class` is a Python keyword
    class_name: str = "class_name"
    class_utf8: str = "class_utf8"
    class_name_utf8: str = "class_name_utf8"
    # bookkeeping, one row per chunk, and the failure table, one row per failed clip
    chunk_done: str = "chunk_done"
    chunk_sha256: str = "chunk_sha256"
    chunk_failures: str = "chunk_failures"
    failure_clip_id: str = "failure_clip_id"
    failure_error: str = "failure_error"
    failure_chunk: str = "failure_chunk"


ARRAY = ArrayNames()

# groups of the array names :meth:`Layout.array_specs` defines (the schema); other modules use these
COLUMN_ARRAYS = (ARRAY.clip_id, ARRAY.split, ARRAY.fold, ARRAY.fingerprint)  # the manifest's columns, one row per clip
LOGIT_ARRAYS = (
    ARRAY.logits,
    ARRAY.view_logits,
    ARRAY.topk_values,
    ARRAY.topk_indices,
    ARRAY.topk_fill,
    ARRAY.view_topk_values,
    ARRAY.view_topk_indices,
    ARRAY.view_topk_fill,
)  # dense or top-k, clean clip or views
# SCORE_ARRAYS are finite iff the row is valid; VIEW_PARAM_ARRAYS go with view_partner
SCORE_ARRAYS = (ARRAY.logits, ARRAY.view_logits, ARRAY.topk_values, ARRAY.view_topk_values)
VIEW_PARAM_ARRAYS = (ARRAY.view_lambda, ARRAY.view_time_shift, ARRAY.view_freq_masks, ARRAY.view_time_masks)
CLASS_ARRAYS = (ARRAY.class_, ARRAY.class_name, ARRAY.class_utf8, ARRAY.class_name_utf8)  # 1.3, from the vocabulary
FAILURE_ARRAYS = (ARRAY.failure_clip_id, ARRAY.failure_error, ARRAY.failure_chunk)
CHUNK_CHECKSUMS = ARRAY.chunk_sha256


@dataclass(frozen=True)
class ArraySpec:
    name: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str  # numpy dtype name, or "str" for zarr's variable-length UTF-8 strings
    # dimension names are a namespace of their own (zarr's dimension_names), spelled as strings here: only
    # `clip` and `class` coincide with an array's name, because xarray makes the array named like a dim its index
    dims: tuple[str | None, ...]  # None: an unnamed dimension (export copies arrays as they are)
    fill: object
    shards: tuple[int, ...] | None = None  # zarr sharding: several chunks per file (format 1.2)


@dataclass(frozen=True)
class Layout:
    """The shape of a store; everything else about it is provenance."""

    n_clips: int
    num_classes: int
    dtype: str = "float16"
    topk: int = 0  # 0 = dense logits
    views: int = 0
    max_masks: int = 2
    chunk_clips: int = 1  # rows per chunk: the unit of work, of checksums and of resume
    shard_clips: int = 0  # rows per shard file, a multiple of chunk_clips; 0 = one chunk per file (<= 1.1)
    # 1.3: byte widths of the uint8 UTF-8 twins (pipeline.store.encodings), as sorted (key, width) pairs;
    # empty in older stores, which have no twins
    text_bytes: tuple[tuple[str, int], ...] = ()

    @property
    def widths(self) -> dict[str, int]:
        return dict(self.text_bytes)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_clips / self.chunk_clips)

    @property
    def sharded(self) -> bool:
        return self.shard_clips > self.chunk_clips

    def shard_of(self, chunk_index: int) -> int:
        """The shard file chunk `chunk_index` lives in: writers of one shard's chunks take turns."""
        return chunk_index * self.chunk_clips // self.shard_clips if self.sharded else chunk_index

    def _per_clip(self, name: str, tail: tuple[int, ...], dtype: str, dims: tuple[str, ...], fill) -> ArraySpec:
        shards = (self.shard_clips, *tail) if self.sharded else None
        return ArraySpec(name, (self.n_clips, *tail), (self.chunk_clips, *tail), dtype, dims, fill, shards)

    def chunk_bounds(self, chunk_index: int) -> tuple[int, int]:
        if not 0 <= chunk_index < self.n_chunks:
            raise StoreError(f"chunk {chunk_index} out of range: the store has {self.n_chunks} chunks")
        start = chunk_index * self.chunk_clips
        return start, min(start + self.chunk_clips, self.n_clips)

    def to_attrs(self) -> dict:
        return {
            "n_clips": self.n_clips,
            "num_classes": self.num_classes,
            "dtype": self.dtype,
            "topk": self.topk,
            "views": self.views,
            "max_masks": self.max_masks,
            "chunk_clips": self.chunk_clips,
            "n_chunks": self.n_chunks,
            **({"shard_clips": self.shard_clips} if self.sharded else {}),
            **({"text_bytes": self.widths} if self.text_bytes else {}),
        }

    @classmethod
    def from_attrs(cls, attrs: dict) -> Layout:
        try:
            layout = attrs["layout"]
            return cls(
                int(layout["n_clips"]),
                int(layout["num_classes"]),
                str(layout["dtype"]),
                int(layout["topk"]),
                int(layout["views"]),
                int(layout["max_masks"]),
                int(layout["chunk_clips"]),
                int(layout.get("shard_clips", 0)),
                tuple(sorted((str(k), int(v)) for k, v in (layout.get("text_bytes") or {}).items())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"store attrs lack a valid 'layout' entry ({exc!r})") from exc

    def chunk_array_specs(self) -> list[ArraySpec]:
        """Arrays a chunk writer fills, in the order their bytes enter the chunk's sha256."""
        c, k, v, m, spec = self.num_classes, self.topk, self.views, self.max_masks, self._per_clip
        specs = [spec(ARRAY.valid, (), "bool", ("clip",), False), spec(ARRAY.teacher_index, (), "int16", ("clip",), 0)]
        if k:
            specs += [
                spec(ARRAY.topk_values, (k,), self.dtype, ("clip", "rank"), np.nan),
                spec(ARRAY.topk_indices, (k,), "int16", ("clip", "rank"), -1),
                spec(ARRAY.topk_fill, (), self.dtype, ("clip",), np.nan),
            ]
        else:
            specs.append(spec(ARRAY.logits, (c,), self.dtype, ("clip", "class"), np.nan))
        if v:
            if k:
                specs += [
                    spec(ARRAY.view_topk_values, (v, k), self.dtype, ("clip", "view", "rank"), np.nan),
                    spec(ARRAY.view_topk_indices, (v, k), "int16", ("clip", "view", "rank"), -1),
                    spec(ARRAY.view_topk_fill, (v,), self.dtype, ("clip", "view"), np.nan),
                ]
            else:
                specs.append(spec(ARRAY.view_logits, (v, c), self.dtype, ("clip", "view", "class"), np.nan))
            specs += [
                spec(ARRAY.view_partner, (v,), "str", ("clip", "view"), ""),
                spec(ARRAY.view_lambda, (v,), "float32", ("clip", "view"), 1.0),
                spec(ARRAY.view_time_shift, (v,), "int32", ("clip", "view"), 0),
                spec(ARRAY.view_freq_masks, (v, m, 2), "int32", ("clip", "view", "mask", "start_width"), -1),
                spec(ARRAY.view_time_masks, (v, m, 2), "int32", ("clip", "view", "mask", "start_width"), -1),
            ]
        return specs

    def clip_twin_specs(self) -> list[ArraySpec]:
        """1.3: the per-clip arrays derived from the manifest columns at creation (xarray's `clip`, uint8 twins)."""
        if not self.text_bytes:
            return []
        w, spec = self.widths, self._per_clip
        return [
            spec(ARRAY.clip, (), "str", ("clip",), ""),
            spec(ARRAY.clip_id_utf8, (w[ARRAY.clip_id],), "uint8", ("clip", "clip_id_byte"), 0),
            spec(ARRAY.split_utf8, (w[ARRAY.split],), "uint8", ("clip", "split_byte"), 0),
            spec(ARRAY.fingerprint_utf8, (w[ARRAY.fingerprint],), "uint8", ("clip", "fingerprint_byte"), 0),
        ]

    def partner_twin_specs(self) -> list[ArraySpec]:
        """1.3 with views: view_partner as uint8 UTF-8, written with each chunk."""
        if not (self.text_bytes and self.views):
            return []
        return [
            self._per_clip(
                ARRAY.view_partner_utf8,
                (self.views, self.widths[ARRAY.clip_id]),
                "uint8",
                ("clip", "view", "clip_id_byte"),
                0,
            )
        ]

    def class_specs(self) -> list[ArraySpec]:
        """1.3: the vocabulary as arrays (xarray's `class` coordinate, names, uint8 twins)."""
        if not self.text_bytes:
            return []
        c, w = self.num_classes, self.widths
        return [
            ArraySpec(ARRAY.class_, (c,), (c,), "str", ("class",), ""),
            ArraySpec(ARRAY.class_name, (c,), (c,), "str", ("class",), ""),
            ArraySpec(
                ARRAY.class_utf8, (c, w[ARRAY.class_]), (c, w[ARRAY.class_]), "uint8", ("class", "class_byte"), 0
            ),
            ArraySpec(
                ARRAY.class_name_utf8,
                (c, w[ARRAY.class_name]),
                (c, w[ARRAY.class_name]),
                "uint8",
                ("class", "class_name_byte"),
                0,
            ),
        ]

    def array_specs(self, minor: int = int(FORMAT_VERSION.split(".")[1])) -> list[ArraySpec]:
        """Every array of a store of version 1.<minor>: manifest columns, chunk data, bookkeeping, failures."""
        chunks, spec = self.n_chunks, self._per_clip
        return [
            spec(ARRAY.clip_id, (), "str", ("clip",), ""),
            spec(ARRAY.split, (), "str", ("clip",), ""),
            spec(ARRAY.fold, (), "int8", ("clip",), 0),
            *([spec(ARRAY.fingerprint, (), "str", ("clip",), "")] if minor >= 1 else []),
            *self.clip_twin_specs(),
            *self.chunk_array_specs(),
            *self.partner_twin_specs(),
            *self.class_specs(),
            ArraySpec(ARRAY.chunk_done, (chunks,), (chunks,), "bool", ("chunk",), False),
            ArraySpec(ARRAY.chunk_sha256, (chunks,), (chunks,), "str", ("chunk",), ""),
            ArraySpec(ARRAY.chunk_failures, (chunks,), (chunks,), "int32", ("chunk",), 0),
            ArraySpec(ARRAY.failure_clip_id, (0,), (FAILURE_CHUNK,), "str", ("failure",), ""),
            ArraySpec(ARRAY.failure_error, (0,), (FAILURE_CHUNK,), "str", ("failure",), ""),
            ArraySpec(ARRAY.failure_chunk, (0,), (FAILURE_CHUNK,), "int32", ("failure",), -1),
        ]


def default_chunk_clips(n_clips: int, num_classes: int, dtype: str, topk: int) -> int:
    """Rows per chunk so the main per-clip array's chunk holds at least ~1 MiB (capped at n_clips)."""
    itemsize = np.dtype(dtype).itemsize
    row_bytes = topk * (itemsize + 2) + itemsize if topk else num_classes * itemsize
    return max(1, min(math.ceil(TARGET_CHUNK_BYTES / row_bytes), n_clips))


def plan_rows(
    n_clips: int,
    num_classes: int,
    dtype: str,
    topk: int,
    chunk_clips: int | None = None,
    shard_clips: int | None = None,
) -> tuple[int, int]:
    """(rows per chunk, rows per shard file; 0 = unsharded) of a new store.

    The file holds ~1 MiB of the main array as before (default_chunk_clips), rounded up to whole
    chunks; the chunk, the unit of work, is UNIT_CLIPS rows unless the caller asks for another size.
    """
    if chunk_clips is not None and chunk_clips < 1:
        raise ValueError(f"chunk_clips must be positive, got {chunk_clips}")
    chunk = min(chunk_clips or UNIT_CLIPS, max(n_clips, 1))
    if shard_clips is None:
        shard_clips = chunk * math.ceil(default_chunk_clips(n_clips, num_classes, dtype, topk) / chunk)
    if shard_clips % chunk:
        raise ValueError(f"shard_clips ({shard_clips}) must be a multiple of chunk_clips ({chunk})")
    return chunk, (shard_clips if shard_clips > chunk and n_clips > chunk else 0)


def create_array(group: zarr.Group, spec: ArraySpec) -> zarr.Array:
    """zstd as zarr's default, then a crc32c of the compressed bytes: any zarr reader catches a bit flip.
    In a sharded array the codecs apply to each chunk inside the shard, whose index has its own crc32c."""
    dtype = str if spec.dtype == "str" else spec.dtype
    return group.create_array(
        spec.name,
        shape=spec.shape,
        chunks=spec.chunks,
        shards=spec.shards,
        dtype=dtype,
        fill_value=spec.fill,
        dimension_names=spec.dims,
        compressors=(ZstdCodec(level=0), Crc32cCodec()),
    )


def is_store(path: str | os.PathLike) -> bool:
    return (Path(path) / "zarr.json").is_file()


def version_minor(attrs: dict) -> int:
    """The minor version of a store's format (0 for a 1.0 store); what its checksums cover depends on it."""
    try:
        return int(str(attrs.get("version", "1.0")).split(".")[1])
    except (IndexError, ValueError):
        return 0


def open_store(path: str | os.PathLike, mode: AccessMode = "r") -> tuple[zarr.Group, Layout]:
    """Open a cmkd-logits group, refusing other formats and unreadable (newer major) versions.

    `path` is a directory, a .zarr.zip or (read-only) a URL: see :mod:`pipeline.store.location`.
    """
    group = open_group_at(path, mode)
    attrs = group.attrs.asdict()
    if attrs.get("format") != FORMAT_ID:
        raise StoreError(f"{path}: attrs format is {attrs.get('format')!r}, expected {FORMAT_ID!r}")
    version = str(attrs.get("version", ""))
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise StoreError(
            f"{path}: format version {version!r} cannot be read by this code (reads "
            f"{FORMAT_VERSION.split('.')[0]}.x); upgrade the pipeline or rebuild the store"
        )
    return group, Layout.from_attrs(attrs)


def public_location(location) -> str:
    """A store's location as attrs record it (derived stores name their inputs): a URL as is, a local
    path relative to the current folder when inside it, else the file name (the digest beside it
    identifies the store): no writer's folder layout travels with a published store."""
    text = str(location)
    if "://" in text:
        return text
    path = Path(text).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def strings_sha256(items) -> str:
    """sha256 of strings joined by newlines: the documented hash of clip_ids and vocabulary mids."""
    return sha256_hex("\n".join(items).encode("utf-8"))


def json_safe(value):
    """Plain JSON for attrs: tuples become lists, numpy scalars become numbers, NaN/inf become null.

    zarr writes NaN into zarr.json as a bare `NaN`, which strict JSON readers reject.
    """
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"attrs value {value!r} of type {type(value).__name__} is not JSON data")


def read_strings(array: zarr.Array, selection=slice(None)) -> list[str]:
    return [str(item) for item in np.asarray(array[selection]).ravel()]


def dump_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
