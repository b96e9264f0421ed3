"""Checking and describing a store: `verify_store` lists problems, `inspect` prints a summary."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from .format import Layout, StoreError, open_store, read_strings, strings_sha256
from .writer import chunk_digest, read_chunk_arrays, read_failures

REQUIRED_ATTR_PATHS = ("format", "version", "created", "activation", "teacher.checkpoint_sha256", "front_end",
                       "manifest.sha256", "vocabulary.mids", "vocabulary.names", "vocabulary.sha256",
                       "clips.sha256", "software.version", "software.git_commit", "views.count", "views.seed",
                       "topk", "chunk_clips", "layout")
DENSE_ARRAYS = ("logits", "view_logits")
TOPK_ARRAYS = ("topk_values", "topk_indices", "topk_fill", "view_topk_values", "view_topk_indices", "view_topk_fill")


def _missing_attrs(attrs: dict) -> list[str]:
    missing = []
    for dotted in REQUIRED_ATTR_PATHS:
        node = attrs
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            missing.append(dotted)
    return missing


def _schema_problems(group, layout: Layout) -> list[str]:
    problems = []
    present = set(group.array_keys())
    for spec in layout.array_specs():
        if spec.name not in present:
            problems.append(f"array {spec.name!r} is missing")
            continue
        array = group[spec.name]
        dtype_ok = (np.dtype(array.dtype).kind in "OUT") if spec.dtype == "str" else array.dtype == np.dtype(spec.dtype)
        if not dtype_ok:
            problems.append(f"array {spec.name!r} has dtype {array.dtype}, expected {spec.dtype}")
        shape_ok = array.shape[1:] == spec.shape[1:] if spec.dims == ("failure",) else array.shape == spec.shape
        if not shape_ok:
            problems.append(f"array {spec.name!r} has shape {array.shape}, expected {spec.shape}")
        if tuple(array.metadata.dimension_names or ()) != spec.dims:
            problems.append(f"array {spec.name!r} has dimension names {array.metadata.dimension_names}, "
                            f"expected {spec.dims}")
    return problems


def _row_problems(named: dict[str, np.ndarray], chunk_index: int) -> list[str]:
    """Valid rows must be finite and failed rows NaN: masking is never silent filling.

    A view of a valid clip may be NaN as a whole (its mixup partner was unreadable), never in part.
    """
    valid = named["valid"]
    problems = []
    for name in ("logits", "view_logits", "topk_values", "view_topk_values"):
        if name not in named:
            continue
        per_view = named[name].reshape(len(valid), -1, named[name].shape[-1])[valid]
        whole = np.isfinite(per_view).all(axis=-1) | (name.startswith("view_") & np.isnan(per_view).all(axis=-1))
        if not whole.all():
            problems.append(f"chunk {chunk_index}: {name} has non-finite values in valid rows")
        if not np.isnan(named[name][~valid]).all():
            problems.append(f"chunk {chunk_index}: {name} has numbers in failed rows (expected NaN)")
    return problems


def verify_store(path: str | os.PathLike) -> list[str]:
    """Every problem found, as readable lines; an empty list means the store is complete and intact."""
    try:
        group, layout = open_store(path)
    except StoreError as exc:
        return [str(exc)]
    attrs = group.attrs.asdict()
    problems = [f"attrs lack {key!r}" for key in _missing_attrs(attrs)]
    problems += _schema_problems(group, layout)
    if problems:
        return problems
    mids = attrs["vocabulary"]["mids"]
    if strings_sha256(mids) != attrs["vocabulary"]["sha256"] or len(mids) != layout.num_classes:
        problems.append("vocabulary: mids do not match vocabulary.sha256 or the class count")
    if strings_sha256(read_strings(group["clip_id"])) != attrs["clips"]["sha256"]:
        problems.append("clip_id: the stored ids do not match clips.sha256")
    done = np.asarray(group["chunk_done"][:])
    checksums = read_strings(group["chunk_sha256"])
    failure_counts = np.asarray(group["chunk_failures"][:])
    per_chunk = Counter(chunk for _, _, chunk in read_failures(group))
    for chunk_index in np.flatnonzero(done):
        named = read_chunk_arrays(group, layout, int(chunk_index))
        recomputed = chunk_digest(named)
        if recomputed != checksums[chunk_index]:
            problems.append(f"chunk {chunk_index}: sha256 mismatch (recorded {checksums[chunk_index][:12]}..., "
                            f"data hashes to {recomputed[:12]}...): the chunk was changed after it was written")
        problems += _row_problems(dict(named), int(chunk_index))
        if per_chunk[int(chunk_index)] != failure_counts[chunk_index]:
            problems.append(f"chunk {chunk_index}: {failure_counts[chunk_index]} failures counted but "
                            f"{per_chunk[int(chunk_index)]} in the failure table")
    not_done = np.flatnonzero(~done).tolist()
    if not_done:
        problems.append(f"{len(not_done)} of {layout.n_chunks} chunks not written yet (first: {not_done[:20]})")
    leftovers = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*.partial"))
    if leftovers:
        problems.append(f"{len(leftovers)} partial files left by interrupted writes (safe to delete): "
                        f"{leftovers[:5]}")
    return problems


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def inspect(path: str | os.PathLike) -> str:
    """A human summary: size, layout, views, teacher(s), coverage per split, failures, disk use."""
    group, layout = open_store(path)
    attrs = group.attrs.asdict()
    path = Path(path)
    valid = np.asarray(group["valid"][:])
    splits = read_strings(group["split"])
    failures = read_failures(group)
    done = int(np.asarray(group["chunk_done"][:]).sum())
    teacher = attrs.get("teacher", {})
    shas = teacher.get("checkpoint_sha256")
    shas = shas if isinstance(shas, list) else [shas]
    mode = f"top-{layout.topk} compact" if layout.topk else "dense"
    itemsize = np.dtype(layout.dtype).itemsize
    row_bytes = layout.topk * (itemsize + 2) + itemsize if layout.topk else layout.num_classes * itemsize
    logit_names = [n for n in (*DENSE_ARRAYS, *TOPK_ARRAYS) if n in set(group.array_keys())]
    logit_disk = sum(_disk_bytes(path / name) for name in logit_names)
    clip_views = layout.n_clips * (1 + layout.views)
    lines = [
        f"store      {path}  ({attrs.get('format')} {attrs.get('version')}, created {attrs.get('created')})",
        f"clips      {layout.n_clips}  classes {layout.num_classes}  activation {attrs.get('activation')}",
        f"logits     {mode}, {layout.dtype}, {layout.chunk_clips} clips per chunk, {done}/{layout.n_chunks} chunks done",
        f"views      {layout.views} per clip" + (f" (seed {attrs['views']['seed']})" if layout.views else ""),
        f"teacher    {teacher.get('model', '?')}  checkpoint {', '.join(str(s)[:12] for s in shas)}"
        + ("  (cross-fitted)" if len(shas) > 1 else ""),
    ]
    if teacher.get("cross_fitted"):
        oof = teacher.get("out_of_fold", {})
        lines.append(f"crossfit   {len(shas)} teachers; training clips labelled out-of-fold "
                     f"(out-of-fold mAP {oof.get('map', float('nan')):.4f}, accuracy "
                     f"{oof.get('accuracy', float('nan')):.4f}); other clips: mean of the teachers")
    for split in sorted(set(splits)):
        in_split = np.array([s == split for s in splits])
        lines.append(f"coverage   {split or '(none)'}: {int(valid[in_split].sum())}/{int(in_split.sum())} valid")
    lines.append(f"failures   {len(failures)}" + "".join(f"\n             {c}: {e}" for c, e, _ in failures[:5])
                 + (f"\n             ... and {len(failures) - 5} more" if len(failures) > 5 else ""))
    lines.append(f"disk       {_disk_bytes(path) / 1e6:.2f} MB in all; logits {logit_disk / max(clip_views, 1):.1f} "
                 f"bytes per clip-view on disk ({row_bytes} uncompressed)")
    if "completed" in attrs:
        lines.append(f"completed  {attrs['completed'].get('finished')}")
    # "completed" is what the writer recorded; the checksums say whether the data is still what it wrote
    problems = verify_store(path)
    if problems:
        lines.append(f"WARNING    {len(problems)} integrity problem(s): do not train from this store as it is"
                     + "".join(f"\n             {p}" for p in problems[:5])
                     + (f"\n             ... and {len(problems) - 5} more" if len(problems) > 5 else ""))
    else:
        lines.append(f"integrity  all {done} chunk checksums verified")
    return "\n".join(lines)
