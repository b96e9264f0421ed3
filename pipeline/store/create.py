"""Creating a store, or reopening a compatible one to resume: the identity check lives here.

A store's identity is what decides whether its rows mean the same thing as the rows a new run
would write: the teacher checkpoint(s), the manifest files, the front end, the vocabulary, the
views (count, seed, settings, mask slots), the layout (dtype, topk, chunking) and the clip list.
Provenance that does not change the numbers (metrics, training config, software) is not identity.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from ..provenance import software_attrs, utc_now
from .encodings import class_columns, clip_columns, text_widths
from .errors import StoreError, StoreMismatch
from .format import (
    ACTIVATIONS,
    ARRAY,
    DTYPES,
    FORMAT_ID,
    FORMAT_VERSION,
    MAX_CLASSES,
    Layout,
    create_array,
    dump_json,
    is_store,
    json_safe,
    open_store,
    plan_rows,
    strings_sha256,
)
from .lock import store_locked

# the only attr of a store being created; replaced by the full attrs once every array exists
CREATING = "creating"
REQUIRED_ATTRS = {"teacher": "checkpoint_sha256", "manifest": "sha256", "front_end": None}


def _validate_columns(clip_ids, splits, folds, mids, names) -> None:
    if not clip_ids:
        raise ValueError("a store needs at least one clip")
    if not (len(clip_ids) == len(splits) == len(folds)):
        raise ValueError(
            f"clip_ids ({len(clip_ids)}), splits ({len(splits)}) and folds ({len(folds)}) must have one entry per clip"
        )
    seen: set[str] = set()
    for row, clip_id in enumerate(clip_ids):
        if not isinstance(clip_id, str) or not clip_id:
            raise ValueError(f"clip_ids[{row}] is {clip_id!r}; clip ids must be non-empty strings")
        if clip_id in seen:
            raise ValueError(f"clip_ids[{row}] {clip_id!r} appears twice; clip_id is the join key")
        seen.add(clip_id)
    for row, fold in enumerate(folds):
        if fold is not None and not 0 <= int(fold) <= np.iinfo(np.int8).max:
            raise ValueError(f"folds[{row}] = {fold!r} (clip {clip_ids[row]!r}) is outside 0..127")
    if not mids or len(mids) != len(names):
        raise ValueError(f"vocabulary needs one name per mid, got {len(mids)} mids and {len(names)} names")
    if len(set(mids)) != len(mids):
        raise ValueError("vocabulary_mids has duplicates")
    if len(mids) > MAX_CLASSES:
        raise ValueError(f"{len(mids)} classes exceed the int16 class index limit {MAX_CLASSES}")


def _validate_provenance(attrs: dict) -> None:
    missing = []
    for key, inner in REQUIRED_ATTRS.items():
        if not isinstance(attrs.get(key), dict):
            missing.append(key)
        elif inner and attrs[key].get(inner) in (None, "", [], {}):
            missing.append(f"{key}.{inner}")
    if missing:
        raise ValueError(
            f"attrs lacks {missing}: a store must say which teacher, manifest and front end "
            "made it (see docs/store-format.md, 'attrs')"
        )


def _identity(attrs: dict) -> dict:
    layout = attrs["layout"]
    views = attrs["views"]
    return {
        "teacher checkpoint_sha256": attrs["teacher"]["checkpoint_sha256"],
        "manifest sha256": attrs["manifest"]["sha256"],
        "front_end": attrs["front_end"],
        "vocabulary sha256": attrs["vocabulary"]["sha256"],
        "activation": attrs["activation"],
        "views count": views["count"],
        "views seed": views["seed"],
        "views settings": views.get("settings") if views["count"] else None,  # no views: settings unused
        "views max_masks": layout["max_masks"],
        "dtype": layout["dtype"],
        "topk": layout["topk"],
        "clip_ids": attrs["clips"],
    }


def _differences(old: dict, new: dict) -> list[str]:
    lines = []
    for field, new_value in new.items():
        old_value = old.get(field)
        if dump_json(old_value) != dump_json(new_value):
            lines.append(f"{field}: store has {dump_json(old_value)[:120]}, this run has {dump_json(new_value)[:120]}")
    return lines


def build_attrs(
    *, clip_ids, vocabulary_mids, vocabulary_names, activation, attrs, layout: Layout, view_seed: int
) -> dict:
    """The full attrs of a new store: the caller's provenance plus the fields this module owns."""
    provenance = json_safe(attrs)
    views = dict(provenance.get("views") or {})
    views.update({"count": layout.views, "seed": int(view_seed) if layout.views else 0, "max_masks": layout.max_masks})
    views.setdefault("settings", None)
    provenance.update(
        {
            "format": FORMAT_ID,
            "version": FORMAT_VERSION,
            "created": utc_now(),
            "activation": activation,
            "vocabulary": {
                "mids": list(vocabulary_mids),
                "names": list(vocabulary_names),
                "sha256": strings_sha256(vocabulary_mids),
            },
            "clips": {"count": len(clip_ids), "sha256": strings_sha256(clip_ids)},
            "views": views,
            "topk": layout.topk,
            "chunk_clips": layout.chunk_clips,
            "layout": layout.to_attrs(),
        }
    )
    if "software" not in provenance:
        provenance["software"] = software_attrs()
    provenance["sessions"] = [{"started": provenance["created"], "software": provenance["software"]}]
    return provenance


def create_store(
    path: str | os.PathLike,
    *,
    clip_ids,
    splits,
    folds,
    vocabulary_mids,
    vocabulary_names,
    activation: str,
    attrs: dict,
    views: int = 0,
    view_seed: int = 0,
    max_masks: int = 2,
    dtype: str = "float16",
    topk: int = 0,
    chunk_clips: int | None = None,
    overwrite: bool = False,
    fingerprints=None,
    shard_clips: int | None = None,
    id_bytes: int = 0,
) -> None:
    """Create the store, or keep a compatible existing one (resume); refuse an incompatible one.

    Raises StoreMismatch naming every identity field that differs, unless overwrite=True, which
    deletes the old store and starts afresh. `fingerprints`: the manifest's per-clip audio
    fingerprints ("" where unknown), so stage two can tell a clip from another with the same id.
    `id_bytes`: at least this many bytes for the uint8 copies of clip ids and mixup partners (a
    subset keeps its source's width, as its views may name partners outside the subset).
    """
    fingerprints = [""] * len(clip_ids) if fingerprints is None else [str(f or "") for f in fingerprints]
    if len(fingerprints) != len(clip_ids):
        raise ValueError(f"fingerprints ({len(fingerprints)}) must have one entry per clip ({len(clip_ids)})")
    clip_ids, splits = [str(c) for c in clip_ids], [str(s) for s in splits]
    folds = [0 if f is None else int(f) for f in folds]
    _validate_columns(clip_ids, splits, folds, list(vocabulary_mids), list(vocabulary_names))
    _validate_provenance(attrs)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    num_classes = len(vocabulary_mids)
    if topk and not 0 < topk < num_classes:
        raise ValueError(f"topk must be 0 (dense) or in 1..{num_classes - 1}, got {topk}")
    if views < 0 or (views and max_masks < 1):
        raise ValueError(f"views must be >= 0 and max_masks >= 1 with views, got {views} and {max_masks}")
    rows, shard_rows = plan_rows(len(clip_ids), num_classes, dtype, int(topk), chunk_clips, shard_clips)
    widths = text_widths(clip_ids, splits, fingerprints, list(vocabulary_mids), list(vocabulary_names), id_bytes)
    layout = Layout(
        len(clip_ids),
        num_classes,
        dtype,
        int(topk),
        int(views),
        int(max_masks),
        rows,
        shard_rows,
        tuple(sorted(widths.items())),
    )
    new_attrs = build_attrs(
        clip_ids=clip_ids,
        vocabulary_mids=vocabulary_mids,
        vocabulary_names=vocabulary_names,
        activation=activation,
        attrs=attrs,
        layout=layout,
        view_seed=view_seed,
    )
    path = Path(path)
    with store_locked(path):  # nothing below deletes or writes unless this process is the one writer
        if path.exists() and not overwrite:
            if _resume(path, new_attrs, chunk_clips):
                return
        if path.exists():
            shutil.rmtree(path)
        _write_new(path, layout, new_attrs, clip_ids, splits, folds, fingerprints)


def _resume(path: Path, new_attrs: dict, chunk_clips: int | None) -> bool:
    """True when the existing store is compatible and kept; raises StoreMismatch when it is not."""
    if not is_store(path):
        if path.is_dir() and not any(path.iterdir()):
            return False  # an empty directory is no store yet
        raise StoreMismatch(f"{path} exists but is not a {FORMAT_ID} store; pass overwrite=True to replace it")
    existing = zarr.open_group(str(path), mode="r", zarr_format=3)
    found_attrs = existing.attrs.asdict()
    found = found_attrs.get("format")
    if found is None and (found_attrs.get(CREATING) == FORMAT_ID or (not found_attrs and not list(existing.keys()))):
        return False  # our own creation, interrupted (disk full, kill) before any chunk could be written
    if found != FORMAT_ID:
        # also what an interrupted creation leaves behind: its attrs are written last
        raise StoreMismatch(
            f"{path} holds a Zarr group with format {found!r}, not {FORMAT_ID!r} (or its "
            "creation was interrupted); pass overwrite=True to replace it"
        )
    try:
        group, layout = open_store(path, mode="r+")
    except StoreError as exc:
        raise StoreMismatch(f"{exc}; pass overwrite=True to rebuild it") from exc
    old_attrs = group.attrs.asdict()
    differences = _differences(_identity(old_attrs), _identity(new_attrs))
    if chunk_clips is not None and chunk_clips != layout.chunk_clips:
        differences.append(f"chunk_clips: store has {layout.chunk_clips}, this run asks for {chunk_clips}")
    if differences:
        raise StoreMismatch(
            f"{path} was built from different inputs; pass overwrite=True to rebuild it.\n  " + "\n  ".join(differences)
        )
    recorded = old_attrs.get("sessions", [])
    if not isinstance(recorded, list):
        raise StoreError(f"{path}: attrs sessions is a {type(recorded).__name__}, expected a list")
    sessions = list(recorded)  # a copy: the attrs zarr holds are not edited in place
    sessions.append({"started": utc_now(), "software": new_attrs["software"]})
    group.attrs.update({"sessions": sessions})
    return True


def _write_new(path: Path, layout: Layout, attrs: dict, clip_ids, splits, folds, fingerprints) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update({CREATING: FORMAT_ID})  # lets a rerun recognise and redo a creation cut short
    arrays = {spec.name: create_array(group, spec) for spec in layout.array_specs()}
    arrays[ARRAY.clip_id][:] = np.array(clip_ids, dtype=str)
    arrays[ARRAY.split][:] = np.array(splits, dtype=str)
    arrays[ARRAY.fold][:] = np.array(folds, dtype=np.int8)
    arrays[ARRAY.fingerprint][:] = np.array(fingerprints, dtype=str)
    if layout.text_bytes:  # 1.3: the copies other readers use (pipeline.store.encodings)
        columns = {ARRAY.clip_id: clip_ids, ARRAY.split: splits, ARRAY.fingerprint: fingerprints}
        vocabulary = attrs["vocabulary"]
        derived = {
            **clip_columns(columns, layout.widths),
            **class_columns(vocabulary["mids"], vocabulary["names"], layout.widths),
        }
        for name, values in derived.items():
            arrays[name][:] = values
    # attrs last: a store whose creation was interrupted has no format id and is not taken for one
    group.attrs.put(attrs)
