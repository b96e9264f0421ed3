"""Describing a store (``inspect``): what it holds and where it came from, as text or as JSON.

It reads attrs and the small per-clip columns only; it says "verified" only when given the result
of a full check (``inspect --verify`` or ``verify``), and otherwise prints the digest computed from
the recorded checksums, marked as not verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .format import ARRAY, LOGIT_ARRAYS, open_store, read_strings
from .integrity import completion_problem, format_contradictions, store_digest, uncovered_note
from .location import is_local_dir, is_zip
from .nodes import array_at, attrs_section
from .writer import read_failures


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def describe(location, verification=None) -> dict:
    """Everything `inspect` prints, as JSON data; `verification`: a :class:`Verification` of this store."""
    group, layout = open_store(location)
    attrs = group.attrs.asdict()
    valid = np.asarray(array_at(group, ARRAY.valid)[:])
    splits = read_strings(array_at(group, ARRAY.split))
    fingerprints = read_strings(array_at(group, ARRAY.fingerprint)) if ARRAY.fingerprint in group else []
    failures = read_failures(group)
    teacher = attrs_section(attrs, "teacher", location)
    shas = teacher.get("checkpoint_sha256")
    manifest = attrs_section(attrs, "manifest", location)
    per_split = {}
    for split in sorted(set(splits)):
        in_split = np.array([s == split for s in splits])
        per_split[split or "(none)"] = {"clips": int(in_split.sum()), "valid": int(valid[in_split].sum())}
    unfinished = completion_problem(group, attrs, layout)
    info = {
        "store": str(location),
        "format": attrs.get("format"),
        "version": attrs.get("version"),
        "created": attrs.get("created"),
        "teacher": {
            "model": teacher.get("model"),
            "checkpoint_sha256": shas,
            "cross_fitted": bool(teacher.get("cross_fitted")),
            "out_of_fold": teacher.get("out_of_fold"),
            "ensemble": teacher.get("ensemble"),
        },
        "vocabulary": {
            "classes": layout.num_classes,
            "sha256": attrs_section(attrs, "vocabulary", location).get("sha256"),
        },
        "activation": attrs.get("activation"),
        "front_end": attrs.get("front_end"),
        "manifest": {"name": manifest.get("name"), "sha256": manifest.get("sha256")},
        "clips": layout.n_clips,
        "splits": per_split,
        "fingerprints": sum(1 for f in fingerprints if f),
        "logits": {
            "mode": f"top-{layout.topk}" if layout.topk else "dense",
            "dtype": layout.dtype,
            "chunk_clips": layout.chunk_clips,
            "chunks": layout.n_chunks,
            "chunks_done": int(np.asarray(array_at(group, ARRAY.chunk_done)[:]).sum()),
        },
        "views": {
            "count": layout.views,
            "seed": attrs_section(attrs, "views", location).get("seed") if layout.views else None,
        },
        "failures": {"count": len(failures), "first": [{"clip_id": c, "error": e} for c, e, _ in failures[:5]]},
        "completed": attrs_section(attrs, "completed", location).get("finished") if not unfinished else None,
        "unfinished": unfinished or None,
        "software": attrs.get("software"),
        "derived": attrs.get("derived"),
        "imported": attrs.get("imported"),
        "digest": verification.digest if verification else store_digest(group, attrs),
        "verified": None if verification is None else verification.ok,
    }
    if verification is not None:
        info["problems"] = verification.problems
    info["checksums_cover"] = uncovered_note(attrs) or "every per-clip array, the attrs and the failure table (digest)"
    info["format_contradictions"] = format_contradictions(group, layout, attrs)
    if is_local_dir(location) or is_zip(location):
        path = Path(location)
        info["disk_bytes"] = _disk_bytes(path) if path.is_dir() else path.stat().st_size
        if path.is_dir():
            clip_views = max(layout.n_clips * (1 + layout.views), 1)
            logit_bytes = sum(_disk_bytes(path / n) for n in LOGIT_ARRAYS if (path / n).is_dir())
            info["logit_bytes_per_clip_view"] = round(logit_bytes / clip_views, 1)
    return info


def _short(sha) -> str:
    if isinstance(sha, dict):
        return ", ".join(f"{k} {str(v)[:12]}" for k, v in sha.items())
    if isinstance(sha, list):
        return ", ".join(str(s)[:12] for s in sha)
    return str(sha)[:12]


def format_description(info: dict) -> str:
    teacher, logits, vocab = info["teacher"], info["logits"], info["vocabulary"]
    front = info.get("front_end") or {}
    fbank = front.get("fbank") or {}
    lines = [
        f"store      {info['store']}  ({info['format']} {info['version']}, created {info['created']})",
        f"teacher    {teacher['model']}  checkpoint {_short(teacher['checkpoint_sha256'])}"
        + (
            "  (cross-fitted)"
            if isinstance(teacher["checkpoint_sha256"], list) and len(teacher["checkpoint_sha256"]) > 1
            else ""
        ),
    ]
    if teacher.get("cross_fitted"):
        oof = teacher.get("out_of_fold") or {}
        lines.append(
            f"crossfit   training clips labelled out-of-fold (out-of-fold mAP {oof.get('map', float('nan')):.4f}, "
            f"accuracy {oof.get('accuracy', float('nan')):.4f}); other clips: mean of the teachers"
        )
    if teacher.get("ensemble"):
        members = teacher["ensemble"]["members"]
        lines.append(
            "ensemble   "
            + " + ".join(f"{m['weight']:.3g} x {m['model']} ({m['digest'][:12]})" for m in members)
            + f" in {teacher['ensemble']['space']} space"
        )
    lines += [
        f"classes    {vocab['classes']}  vocabulary {str(vocab['sha256'])[:12]}  activation {info['activation']}",
        f"front end  {front.get('sample_rate')} Hz"
        + (f", {fbank.get('n_mels')} mels" if fbank.get("n_mels") else "")
        + (f", {front.get('target_length')} frames" if front.get("target_length") else "")
        + (f" (imported from {front['imported']})" if front.get("imported") else ""),
        f"manifest   {info['manifest']['name']}  {_short(info['manifest']['sha256'])}",
        f"clips      {info['clips']}, {info['fingerprints']} with audio fingerprints",
    ]
    for split, counts in info["splits"].items():
        lines.append(f"coverage   {split}: {counts['valid']}/{counts['clips']} valid")
    lines.append(
        f"logits     {logits['mode']}, {logits['dtype']}, {logits['chunk_clips']} clips per chunk, "
        f"{logits['chunks_done']}/{logits['chunks']} chunks done"
    )
    views = info["views"]
    lines.append(f"views      {views['count']} per clip" + (f" (seed {views['seed']})" if views["count"] else ""))
    failures = info["failures"]
    lines.append(
        f"failures   {failures['count']}"
        + "".join(f"\n             {f['clip_id']}: {f['error']}" for f in failures["first"])
        + (f"\n             ... and {failures['count'] - 5} more" if failures["count"] > 5 else "")
    )
    if info.get("disk_bytes") is not None:
        lines.append(
            f"disk       {info['disk_bytes'] / 1e6:.2f} MB"
            + (
                f"; logits {info['logit_bytes_per_clip_view']} bytes per clip-view"
                if "logit_bytes_per_clip_view" in info
                else ""
            )
        )
    for key in ("derived", "imported"):
        if info.get(key):
            detail = info[key]
            lines.append(
                f"{key:<10} {detail.get('op') or detail.get('format')}"
                + (
                    f" from {', '.join(i['location'] for i in detail.get('inputs', []))}"
                    if detail.get("inputs")
                    else ""
                )
                + (f" files {', '.join(detail['files'])}" if detail.get("files") else "")
            )
    lines.append(f"completed  {info['completed']}" if info["completed"] else f"completed  no: {info['unfinished']}")
    if info["checksums_cover"].startswith("format"):
        lines.append(f"note       {info['checksums_cover']}")
    lines += [f"WARNING    {line}" for line in info["format_contradictions"]]
    software = info.get("software") or {}
    lines.append(f"software   cmkd-pipeline {software.get('version')} ({software.get('git_commit')})")
    if info["verified"] is None:
        lines.append(f"digest     {info['digest']}  (from the recorded checksums; NOT verified: run verify)")
    else:
        lines.append(
            f"digest     {info['digest']}  ({'verified: every chunk re-hashed' if info['verified'] else 'verification FAILED'})"
        )
    return "\n".join(lines)


def inspect(location: str | os.PathLike, verification=None) -> str:
    """A human summary: provenance, layout, coverage per split, failures, completion, digest."""
    return format_description(describe(location, verification))
