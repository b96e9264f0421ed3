"""Stores made from stores: export (one zip to publish), subset, merge and ensemble.

Every input is verified in full first (:func:`check_store`), and every output is written by the
library's own writer (create_store, chunk by chunk, finalize_store), so it is a complete, checksummed
store with a digest of its own. Outputs record where they came from in ``attrs.derived``: the
operation, each input's location and digest, and the options.
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .create import _identity, create_store
from .encodings import utf8_width
from .format import ARRAY, COLUMN_ARRAYS, ArraySpec, StoreError, create_array, open_store, public_location
from .integrity import chunk_digest
from .location import consolidate, open_group_at
from .lock import StoreLock
from .nodes import array_at, attrs_section, attrs_text, dimension_names
from .verify import check_store
from .writer import chunk_plan, finalize_store, mark_chunk_done, read_failures, write_chunk, write_stored_chunk

PROVENANCE_KEYS = ("teacher", "front_end", "manifest")
MERGE_FIELDS = (
    "teacher checkpoint_sha256",
    "front_end",
    "vocabulary sha256",
    "activation",
    "views count",
    "views seed",
    "views settings",
    "views max_masks",
    "dtype",
    "topk",
)


def verified(location, digest: str | None = None) -> str:
    """The digest of a store that passes every check (and reproduces ``digest``, the published one, when
    given); StoreError (first problem and a count) otherwise."""
    result = check_store(location, digest)
    if not result.ok:
        more = f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
        raise StoreError(f"{location}: does not verify: {result.problems[0]}{more}; run verify for the full list")
    return result.digest


class Source:
    """A verified input store held in memory: every per-clip array in stored form, by row."""

    def __init__(self, location, digest: str | None = None):
        self.location = str(location)
        self.digest = verified(location, digest)
        group, self.layout = open_store(location)
        self.attrs = group.attrs.asdict()
        names = [*COLUMN_ARRAYS, *(spec.name for spec in self.layout.chunk_array_specs())]
        self.arrays = {name: np.asarray(array_at(group, name)[...]) for name in names if name in group}
        if ARRAY.fingerprint not in self.arrays:  # a 1.0 store
            self.arrays[ARRAY.fingerprint] = np.array([""] * self.layout.n_clips, dtype=object)
        self.clip_ids = [str(c) for c in self.arrays[ARRAY.clip_id]]
        self.row_of = {clip_id: row for row, clip_id in enumerate(self.clip_ids)}
        self.failures = {clip: error for clip, error, _ in read_failures(group)}

    def record(self) -> dict:
        return {"location": public_location(self.location), "digest": self.digest}

    def row_digest(self, row: int) -> str:
        return chunk_digest([(name, array[row : row + 1]) for name, array in self.arrays.items()])


def _new_store_like(out, first: Source, clip_rows: list[tuple[Source, int]], derived: dict, **layout) -> None:
    attrs = {key: first.attrs[key] for key in PROVENANCE_KEYS if key in first.attrs}
    views = attrs_section(first.attrs, "views", first.location)
    attrs["views"] = {"settings": views.get("settings")}
    attrs["derived"] = derived
    column = {name: [src.arrays[name][row] for src, row in clip_rows] for name in COLUMN_ARRAYS}
    vocabulary = attrs_section(first.attrs, "vocabulary", first.location)
    options = dict(
        views=first.layout.views,
        view_seed=views.get("seed", 0),
        max_masks=first.layout.max_masks,
        dtype=first.layout.dtype,
        topk=first.layout.topk,
    )
    options.update(layout)
    # the uint8 copies of mixup partners must hold every source's ids, also those a subset leaves out
    options["id_bytes"] = max(utf8_width(src.clip_ids) for src in {id(s): s for s, _ in clip_rows}.values())
    create_store(
        out,
        clip_ids=[str(c) for c in column[ARRAY.clip_id]],
        splits=[str(s) for s in column[ARRAY.split]],
        folds=[int(f) for f in column[ARRAY.fold]],
        fingerprints=[str(f) for f in column[ARRAY.fingerprint]],
        vocabulary_mids=vocabulary["mids"],
        vocabulary_names=vocabulary["names"],
        activation=attrs_text(first.attrs, "activation", first.location),
        attrs=attrs,
        **options,
    )


def _copy_rows(out, clip_rows: list[tuple[Source, int]], summary: dict) -> dict:
    """Fill a fresh store with the given (source, row) rows, in stored form, then finalize it."""
    with StoreLock(out):
        for chunk, start, stop in chunk_plan(out):
            picked = clip_rows[start:stop]
            names = [spec.name for spec in picked[0][0].layout.chunk_array_specs()]
            data = {name: np.stack([src.arrays[name][row] for src, row in picked]) for name in names}
            sha = write_stored_chunk(out, chunk, data)
            failures = [
                (src.clip_ids[row], src.failures.get(src.clip_ids[row], "failed in the input store"))
                for src, row in picked
                if not src.arrays[ARRAY.valid][row]
            ]
            mark_chunk_done(out, chunk, sha, failures)
        return finalize_store(out, summary)


def subset(
    location, out, splits: list[str] | None = None, clip_ids: list[str] | None = None, digest: str | None = None
) -> dict:
    if not splits and not clip_ids:
        raise ValueError("subset needs --split or --clips")
    source = Source(location, digest)
    if clip_ids is not None:
        unknown = [c for c in clip_ids if c not in source.row_of]
        if unknown:
            raise StoreError(f"{location}: {len(unknown)} requested clips are not in the store (first: {unknown[:10]})")
        rows = [source.row_of[c] for c in dict.fromkeys(clip_ids)]
    else:
        assert splits  # checked above: without a clip list the splits are given
        rows = [row for row, split in enumerate(source.arrays[ARRAY.split]) if str(split) in set(splits)]
    if not rows:
        raise StoreError(f"{location}: the selection is empty (splits {splits})")
    derived = {"op": "subset", "inputs": [source.record()], "splits": splits, "clips": len(rows)}
    _new_store_like(out, source, [(source, row) for row in rows], derived)
    return _copy_rows(out, [(source, row) for row in rows], {"op": "subset"})


def _pins(locations: list, digests: list[str] | None) -> list[str | None]:
    """One published digest per input store (``--digest`` given once per store, in order), or none."""
    if not digests:
        return [None] * len(locations)
    if len(digests) != len(locations):
        raise ValueError(
            f"--digest given {len(digests)} times for {len(locations)} stores: give one per store, in order"
        )
    return list(digests)


def merge(locations: list, out, digests: list[str] | None = None) -> dict:
    """One store from stores of different shards or splits of one dataset, same teacher and layout."""
    if len(locations) < 2:
        raise ValueError("merge needs at least two stores")
    sources = [Source(location, pin) for location, pin in zip(locations, _pins(locations, digests))]
    first = sources[0]
    reference = _identity(first.attrs)
    for source in sources[1:]:
        theirs = _identity(source.attrs)
        differing = [name for name in MERGE_FIELDS if theirs[name] != reference[name]]
        if differing:
            raise StoreError(
                f"{source.location}: cannot merge with {first.location}: {', '.join(differing)} differ "
                "(other teacher, front end, vocabulary or layout)"
            )
    clip_rows: list[tuple[Source, int]] = []
    seen: dict[str, tuple[Source, int]] = {}
    for source in sources:
        for row, clip_id in enumerate(source.clip_ids):
            if clip_id in seen:
                other, other_row = seen[clip_id]
                if other.row_digest(other_row) != source.row_digest(row):
                    raise StoreError(
                        f"{source.location}: clip {clip_id!r} is also in {other.location} with other "
                        "logits, views, split or audio; refusing to pick one"
                    )
                continue
            seen[clip_id] = (source, row)
            clip_rows.append((source, row))
    derived = {"op": "merge", "inputs": [s.record() for s in sources], "clips": len(clip_rows)}
    _new_store_like(out, first, clip_rows, derived)
    return _copy_rows(out, clip_rows, {"op": "merge"})


def _to_logits(probabilities: np.ndarray, activation: str) -> np.ndarray:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p) if activation == "sigmoid" else np.log(p)


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def ensemble(
    locations: list,
    out,
    weights: list[float] | None = None,
    space: str = "logits",
    clips: str = "same",
    vocab_remap: bool = False,
    digests: list[str] | None = None,
) -> dict:
    """A teacher made of several (e.g. a CNN and an AST): the weighted mean of their logits or probabilities.

    Refuses different clip sets unless `clips="intersection"`, other activations, and vocabularies that
    differ from the first store's unless `vocab_remap` (the same classes in another order, mapped by mid).
    """
    from .reader import LogitTable

    if len(locations) < 2:
        raise ValueError("ensemble needs at least two stores")
    if space not in ("logits", "probs"):
        raise ValueError(f"--space must be logits or probs, got {space!r}")
    weights = [1.0] * len(locations) if not weights else [float(w) for w in weights]
    # checked before anything is opened or written: NaN passed `min(weights) < 0` and surfaced late,
    # naming output rows, with an unfinished store left behind
    if (
        len(weights) != len(locations)
        or not all(math.isfinite(w) for w in weights)
        or min(weights) < 0
        or sum(weights) <= 0
    ):
        raise ValueError(f"--weights needs {len(locations)} non-negative numbers with a positive sum, got {weights}")
    weights = [w / sum(weights) for w in weights]
    pins = _pins(locations, digests)
    sources = [Source(location, pin) for location, pin in zip(locations, pins)]
    tables = [
        LogitTable.open(location, load_views=False, expected_digest=pin) for location, pin in zip(locations, pins)
    ]
    first = sources[0]
    mids = attrs_section(first.attrs, "vocabulary", first.location)["mids"]
    orders: list[np.ndarray | None] = []  # per member: its class index for each of the first store's classes
    for source in sources:
        theirs = attrs_section(source.attrs, "vocabulary", source.location)["mids"]
        if theirs == mids:
            orders.append(None)
        elif vocab_remap and sorted(theirs) == sorted(mids):
            position = {mid: i for i, mid in enumerate(theirs)}
            orders.append(np.array([position[mid] for mid in mids]))
        else:
            raise StoreError(
                f"{source.location}: its vocabulary differs from {first.location}'s ("
                + (
                    "same classes, other order: pass --vocab-remap"
                    if sorted(theirs) == sorted(mids)
                    else "other classes"
                )
                + ")"
            )
        if attrs_text(source.attrs, "activation", source.location) != attrs_text(
            first.attrs, "activation", first.location
        ):
            raise StoreError(
                f"{source.location}: activation {source.attrs['activation']} differs from {first.attrs['activation']}"
            )
    ids = [c for c in first.clip_ids if all(c in s.row_of for s in sources)]
    if clips == "same" and any(set(s.clip_ids) != set(first.clip_ids) for s in sources[1:]):
        raise StoreError(
            f"the stores hold different clip sets ({', '.join(str(len(s.clip_ids)) for s in sources)} "
            f"clips, {len(ids)} in all); pass --clips intersection to keep the shared ones"
        )
    activation = attrs_text(first.attrs, "activation", first.location)
    stacked = np.stack(
        [
            t.logits_for(t.rows(ids)) if order is None else t.logits_for(t.rows(ids))[:, order]
            for t, order in zip(tables, orders)
        ]
    )  # [member, clip, class], the first's class order
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    if space == "logits":
        mixed = (w * stacked).sum(axis=0)
    else:
        mixed = _to_logits((w * _activate(stacked.astype(np.float64), activation)).sum(axis=0), activation)
    valid = np.isfinite(stacked).all(axis=(0, 2))
    members = [
        {
            **s.record(),
            "model": attrs_section(s.attrs, "teacher", s.location).get("model"),
            "weight": weight,
            "checkpoint_sha256": attrs_section(s.attrs, "teacher", s.location).get("checkpoint_sha256"),
        }
        for s, weight in zip(sources, weights)
    ]
    teacher = {
        "model": "ensemble(" + "+".join(str(m["model"]) for m in members) + ")",
        "checkpoint_sha256": chunk_digest(
            [("members", np.array([str(m["checkpoint_sha256"]) for m in members], dtype=object))]
        ),
        "ensemble": {"members": members, "space": space},
    }
    rows = [(first, first.row_of[c]) for c in ids]
    derived = {
        "op": "ensemble",
        "inputs": [s.record() for s in sources],
        "weights": weights,
        "space": space,
        "clips": clips,
        "vocab_remap": vocab_remap,
    }
    dtype = "float32" if any(s.layout.dtype == "float32" for s in sources) else "float16"
    _new_store_like(out, _with_teacher(first, teacher), rows, derived, views=0, topk=0, dtype=dtype)
    with StoreLock(out):
        for chunk, start, stop in chunk_plan(out):
            sha = write_chunk(out, chunk, np.where(valid[start:stop, None], mixed[start:stop], 0.0), valid[start:stop])
            failures = [(ids[i], "not valid in every ensemble member") for i in range(start, stop) if not valid[i]]
            mark_chunk_done(out, chunk, sha, failures)
        return finalize_store(out, {"op": "ensemble"})


def _with_teacher(source: Source, teacher: dict) -> Source:
    clone = object.__new__(Source)
    clone.__dict__.update(source.__dict__)
    clone.attrs = {**source.attrs, "teacher": teacher}
    return clone


def export(location, out, pinned: str | None = None) -> str:
    """Verify, copy into a fresh directory (consolidated), zip it (stored, the chunks are compressed); returns
    the digest, which the zip reproduces."""
    out = Path(out)
    if not out.name.endswith(".zip"):
        raise ValueError(f"{out}: the export must be a .zarr.zip file")
    digest = verified(location, pinned)
    source = open_group_at(location)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as scratch:
        copy = Path(scratch) / "store.zarr"
        import zarr

        target = zarr.open_group(str(copy), mode="w", zarr_format=3)
        for name, array in source.arrays():
            kind = np.dtype(array.dtype).kind
            spec = ArraySpec(
                name,
                array.shape,
                array.chunks,
                "str" if kind in "OUT" else np.dtype(array.dtype).name,
                dimension_names(array),
                array.fill_value,
            )
            copied = create_array(target, spec)
            step = max(array.chunks[0], 1)
            for begin in range(0, array.shape[0], step):
                copied[begin : begin + step] = array[begin : begin + step]
        target.attrs.update(source.attrs.asdict())
        consolidate(copy)
        draft = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(draft, "w", compression=zipfile.ZIP_STORED) as archive:
            for file in sorted(p for p in copy.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(copy).as_posix())
        os.replace(draft, out)
    if verified(out) != digest:
        out.unlink()
        raise StoreError(f"{out}: the zipped copy does not reproduce the digest of {location}; removed")
    return digest


def read_clip_list(path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
