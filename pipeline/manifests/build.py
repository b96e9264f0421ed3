"""One entry point over the format converters: official metadata -> ``data_manifests/<name>/``."""

from __future__ import annotations

from pathlib import Path

from .ast_json import prepare_ast_json
from .audioset import missing_segments_csv, prepare_audioset, scan_audioset
from .esc50 import prepare_esc50
from .fsd50k import prepare_fsd50k
from .records import Clip, Label, Manifest, ManifestError, _atomic_write, load_manifest, write_manifest

FORMATS = ("fsd50k", "esc50", "audioset", "ast-json")
# Formats whose metadata lives in files the user names, rather than at fixed places under DATA_ROOT.
TAKES_FILES = ("audioset", "ast-json")
MISSING_FILE = "missing_segments.csv"


def _check_inputs(fmt: str, data_root: Path, labels_csv, segments) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt not in TAKES_FILES and (labels_csv or segments):
        raise ValueError(f"format {fmt} reads its metadata from DATA_ROOT; LABELS/--segments are only for "
                         f"{' and '.join(TAKES_FILES)}")
    if not data_root.is_dir():
        raise ManifestError(str(data_root), [f"{data_root}: DATA_ROOT is not a directory"])


def prepare(fmt: str, data_root: str | Path, labels_csv: str | Path | None = None,
            segments: list[str | Path] | None = None, progress: bool = True) -> tuple[list[Label], list[Clip]]:
    """Run the converter for ``fmt``; ``labels_csv``/``segments`` only apply to audioset and ast-json."""
    data_root = Path(data_root)
    _check_inputs(fmt, data_root, labels_csv, segments)
    if fmt == "fsd50k":
        return prepare_fsd50k(data_root, progress)
    if fmt == "esc50":
        return prepare_esc50(data_root, progress)
    if fmt == "ast-json":
        return prepare_ast_json(data_root, labels_csv, segments, progress)
    return prepare_audioset(data_root, labels_csv, segments, progress)


def build_manifest(dataset: str, fmt: str, data_root: str | Path, out_root: str | Path = "data_manifests",
                   labels_csv: str | Path | None = None, segments: list[str | Path] | None = None,
                   progress: bool = True) -> Manifest:
    """Convert, validate, then write ``out_root/dataset/``; a failed run leaves the old manifest as it was.

    AudioSet also gets ``missing_segments.csv`` (listed segments without audio) and their count in
    dataset.json, because which clips a copy lacks decides whether its results compare with others'.
    """
    out_dir = Path(out_root) / dataset
    extra: dict = {}
    missing_text = None
    if fmt == "audioset":
        _check_inputs(fmt, Path(data_root), labels_csv, segments)
        scan = scan_audioset(data_root, labels_csv, segments, progress)
        labels, clips = scan.labels, scan.clips
        extra = {"segment_files": scan.segment_files, "missing": len(scan.missing), "missing_segments": MISSING_FILE}
        missing_text = missing_segments_csv(scan.missing)
    else:
        labels, clips = prepare(fmt, data_root, labels_csv, segments, progress)
    if not clips:
        raise ManifestError(f"{fmt} at {data_root}", ["the metadata lists no clips"])
    if missing_text is not None:
        _atomic_write(out_dir / MISSING_FILE, missing_text)
    elif (out_dir / MISSING_FILE).exists():  # left by an earlier AudioSet build into the same name
        (out_dir / MISSING_FILE).unlink()
    write_manifest(out_dir, dataset, data_root, fmt, labels, clips, extra)
    return load_manifest(out_dir)


def summary_line(manifest: Manifest, out_dir: str | Path) -> str:
    counts = manifest.info.get("counts", {})
    parts = [f"{key} {value}" for key, value in counts.items() if key not in ("clips", "classes", "unlabelled")]
    line = (f"{manifest.name}: {counts.get('clips', len(manifest.clips))} clips, {manifest.num_classes} classes "
            f"({', '.join(parts)})")
    if counts.get("unlabelled"):
        line += f", {counts['unlabelled']} unlabelled"
    if "missing" in manifest.info:
        line += f", {manifest.info['missing']} segments without audio (see {MISSING_FILE})"
    return f"{line} -> {out_dir}/"
