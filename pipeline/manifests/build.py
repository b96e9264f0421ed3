"""One entry point over the format converters: official metadata -> ``data_manifests/<name>/``."""

from __future__ import annotations

from pathlib import Path

from ..paths import MANIFESTS_ROOT
from .ast_json import prepare_ast_json
from .audioset import missing_segments_csv, prepare_audioset, scan_audioset
from .audioset_hdf5 import scan_audioset_hdf5
from .esc50 import prepare_esc50
from .fsd50k import prepare_fsd50k
from .records import Clip, Label, Manifest, ManifestError, _atomic_write, is_fold_based, load_manifest, write_manifest

FORMATS = ("fsd50k", "esc50", "audioset", "audioset-hdf5", "ast-json")
# Formats whose metadata lives in files the user names, rather than at fixed places under DATA_ROOT.
TAKES_FILES = ("audioset", "audioset-hdf5", "ast-json")
MISSING_FILE = "missing_segments.csv"


def _check_inputs(fmt: str, data_root: Path, labels_csv, segments) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt not in TAKES_FILES and (labels_csv or segments):
        raise ValueError(
            f"format {fmt} reads its metadata from DATA_ROOT; LABELS/--segments are only for "
            f"{' and '.join(TAKES_FILES)}"
        )
    if not data_root.is_dir():
        raise ManifestError(str(data_root), [f"{data_root}: DATA_ROOT is not a directory"])


def prepare(
    fmt: str,
    data_root: str | Path,
    labels_csv: str | Path | None = None,
    segments: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> tuple[list[Label], list[Clip]]:
    """Run the converter for ``fmt``; ``labels_csv``/``segments`` only apply to audioset and ast-json;
    ``check`` is the audio check (full decode, or header only)."""
    data_root = Path(data_root)
    _check_inputs(fmt, data_root, labels_csv, segments)
    if fmt == "fsd50k":
        return prepare_fsd50k(data_root, progress, check)
    if fmt == "esc50":
        return prepare_esc50(data_root, progress, check)
    if fmt == "ast-json":
        return prepare_ast_json(data_root, labels_csv, segments, progress, check)
    if fmt == "audioset-hdf5":
        scan = scan_audioset_hdf5(data_root, labels_csv, segments, progress, check)
        return scan.labels, scan.clips
    return prepare_audioset(data_root, labels_csv, segments, progress, check)


def check_splits(fmt: str, data_root, clips: list[Clip]) -> None:
    """Refuse, at manifest time, splits that would only fail later: split-based data needs labelled
    eval clips, and a val split (when the metadata has one) needs labelled clips too."""
    if is_fold_based(clips):
        return  # every fold is evaluated in turn
    problems = []
    for split, fix in (
        (
            "eval",
            "the eval metadata (FSD50K eval.csv, AudioSet eval_segments.csv, an AST eval "
            "datafile) must list clips with audio and labels",
        ),
        ("val", "drop the val rows to carve a val split from train at training time, or label them"),
    ):
        listed = [c for c in clips if c.split == split]
        labelled = [c for c in listed if c.labels]
        if (split == "eval" or listed) and not labelled:
            problems.append(f"the {split} split has no labelled clips ({len(listed)} listed): {fix}")
    if problems:
        raise ManifestError(f"{fmt} at {data_root}", problems)


def build_manifest(
    dataset: str,
    fmt: str,
    data_root: str | Path,
    out_root: str | Path = MANIFESTS_ROOT,
    labels_csv: str | Path | None = None,
    segments: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> Manifest:
    """Convert, validate, then write ``out_root/dataset/``; a failed run leaves the old manifest as it was.

    AudioSet also gets ``missing_segments.csv`` (listed segments without audio) and their count in
    dataset.json, because which clips a copy lacks decides whether its results compare with others'.
    """
    out_dir = Path(out_root) / dataset
    extra: dict = {}
    missing_text = None
    if fmt == "audioset":
        _check_inputs(fmt, Path(data_root), labels_csv, segments)
        scan = scan_audioset(data_root, labels_csv, segments, progress, check)
        labels, clips = scan.labels, scan.clips
        extra = {"segment_files": scan.segment_files, "missing": len(scan.missing), "missing_segments": MISSING_FILE}
        missing_text = missing_segments_csv(scan.missing)
    elif fmt == "audioset-hdf5":
        _check_inputs(fmt, Path(data_root), labels_csv, segments)
        hdf5 = scan_audioset_hdf5(data_root, labels_csv, segments, progress, check)
        labels, clips = hdf5.labels, hdf5.clips
        extra = {"hdf5_files": hdf5.layouts, "empty_rows": hdf5.empty_rows, "ids_without_start": hdf5.without_start}
    else:
        labels, clips = prepare(fmt, data_root, labels_csv, segments, progress, check)
    if not clips:
        raise ManifestError(f"{fmt} at {data_root}", ["the metadata lists no clips"])
    check_splits(fmt, data_root, clips)
    extra["audio_check"] = check
    if missing_text is not None:
        _atomic_write(out_dir / MISSING_FILE, missing_text)
    elif (out_dir / MISSING_FILE).exists():  # left by an earlier AudioSet build into the same name
        (out_dir / MISSING_FILE).unlink()
    write_manifest(out_dir, dataset, data_root, fmt, labels, clips, extra)
    return load_manifest(out_dir)


def summary_line(manifest: Manifest, out_dir: str | Path) -> str:
    counts = manifest.info.get("counts", {})
    parts = [f"{key} {value}" for key, value in counts.items() if key not in ("clips", "classes", "unlabelled")]
    line = (
        f"{manifest.name}: {counts.get('clips', len(manifest.clips))} clips, {manifest.num_classes} classes "
        f"({', '.join(parts)})"
    )
    if counts.get("unlabelled"):
        line += f", {counts['unlabelled']} unlabelled"
    if "missing" in manifest.info:
        line += f", {manifest.info['missing']} segments without audio (see {MISSING_FILE})"
    if manifest.info.get("empty_rows"):
        line += f", {manifest.info['empty_rows']} empty HDF5 rows skipped (no audio_name)"
    if manifest.info.get("ids_without_start"):
        line += (
            f", {manifest.info['ids_without_start']} clip ids without a start time (pass AUDIOSET_SEGMENTS "
            "to join WAV copies)"
        )
    if manifest.info.get("audio_check") == "header":
        line += "; audio checked by header only (CHECK=header): NaN/inf and out-of-range samples were not looked for"
    elif manifest.info.get("audio_check") == "full":
        line += "; audio fully decoded and checked"
    return f"{line} -> {out_dir}/"
