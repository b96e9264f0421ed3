"""AST/PSLA json datafiles: ``{"data": [{"wav": path, "labels": "/m/a,/m/b"}, ...]}`` + a label CSV.

Users of the parent code bases already have these files, so importing them saves re-deriving a
manifest. Their ``wav`` paths are usually absolute paths on the machine that wrote them
(``/data/sls/...``): paths under DATA_ROOT become relative, and when an absolute path no longer
exists (the data moved) the file is looked up by name under DATA_ROOT. The split comes from each
file's name (``*train*``, ``*eval*``/``*test*``, ``*val*``); the clip id is the wav file's stem.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from .audioset import LABELS_FILE, read_class_labels
from .records import Clip, Label
from .validate import (
    Problems,
    SourceRow,
    decoded_lines,
    finalise_clips,
    scan_audio_files,
    split_from_file_name,
    split_mids,
)


def _datafile_paths(datafiles: list[str | Path], problems: Problems) -> list[Path]:
    paths = []
    for item in map(Path, datafiles):
        if item.is_dir():
            found = sorted(item.glob("*.json"))
            if not found:
                problems.add(str(item), "folder holds no .json datafiles")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            problems.add(str(item), "datafile not found")
    return paths


def _read_entries(path: Path, problems: Problems) -> list[tuple[str, dict]]:
    """(where, entry) pairs of one datafile; structural problems are noted, not raised."""
    lines = decoded_lines(path, problems)  # a BOM is dropped; a non-UTF-8 line is reported by number
    if lines is None:
        return []
    try:
        document = json.loads("".join(lines))
    except json.JSONDecodeError as error:
        problems.add(path.name, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})")
        return []
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        problems.add(path.name, 'expected an object {"data": [...]}')
        return []
    entries = []
    for i, entry in enumerate(data):
        where = f"{path.name} data[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("wav"), str) or not entry["wav"].strip():
            problems.add(where, "entry needs a non-empty string 'wav'")
            continue
        labels = entry.get("labels", "")
        if not isinstance(labels, (str, list)) or (
            isinstance(labels, list) and not all(isinstance(m, str) for m in labels)
        ):
            problems.add(where, "'labels' must be a comma-joined string of mids (or a list of mid strings)")
            continue
        entries.append((where, entry))
    return entries


class _NameIndex:
    """Audio files under DATA_ROOT by file name, built on first use (one walk, only if a path moved)."""

    def __init__(self, data_root: Path):
        self.data_root = data_root
        self._by_name: dict[str, list[str]] | None = None

    def lookup(self, raw: str) -> tuple[str | None, str]:
        """(relative path, "") or (None, reason). Several candidates: the one sharing most parent folders."""
        if self._by_name is None:
            self._by_name = {}
            for relative in scan_audio_files(self.data_root):
                self._by_name.setdefault(PurePosixPath(relative).name, []).append(relative)
        raw_parts = PurePosixPath(raw).parts
        candidates = self._by_name.get(raw_parts[-1], [])
        if not candidates:
            return None, f"{raw} does not exist and no file named {raw_parts[-1]} is under DATA_ROOT"

        def shared_tail(candidate: str) -> int:
            parts, n = PurePosixPath(candidate).parts, 0
            while n < min(len(parts), len(raw_parts)) and parts[-1 - n] == raw_parts[-1 - n]:
                n += 1
            return n

        ranked = sorted(candidates, key=shared_tail, reverse=True)
        if len(ranked) > 1 and shared_tail(ranked[0]) == shared_tail(ranked[1]):
            return (
                None,
                f"{raw} does not exist and {len(ranked)} files under DATA_ROOT share its name "
                f"({ranked[0]}, {ranked[1]}, ...)",
            )
        return ranked[0], ""


def _locate(raw: str, data_root: Path, names: _NameIndex) -> tuple[str | None, str]:
    """A datafile's wav path -> a path for finalise_clips, or (None, reason).

    An existing file is kept as written even when it lies outside DATA_ROOT, so that finalise_clips
    reports it instead of the pipeline quietly reading from another tree; only paths that no longer
    exist (the data moved) are looked up by file name.
    """
    path = Path(raw)
    if path.is_absolute():
        return (raw, "") if path.exists() else names.lookup(raw)
    if (Path(data_root) / path).exists() or ".." in path.parts:
        return raw, ""
    found, _ = names.lookup(raw)
    return found or raw, ""  # nothing by that name either: finalise_clips says "file not found"


def prepare_ast_json(
    data_root: str | Path,
    labels_csv: str | Path | None = None,
    datafiles: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> tuple[list[Label], list[Clip]]:
    """AST json datafiles (files or folders of them) + label CSV -> (labels in CSV order, clips)."""
    data_root = Path(data_root)
    source = f"AST datafiles for {data_root}"
    problems = Problems()
    if labels_csv is None and (data_root / LABELS_FILE).is_file():
        labels_csv = data_root / LABELS_FILE
    if labels_csv is None:
        problems.add(str(data_root), f"no label CSV: pass LABELS=path/to/{LABELS_FILE} (index,mid,display_name)")
    if not datafiles:
        problems.add(str(data_root), "no datafiles: pass AUDIOSET_SEGMENTS=train.json,eval.json (or a folder)")
    problems.raise_if_any(source)
    # raise_if_any raised for a missing label CSV or datafile list
    assert labels_csv is not None and datafiles is not None
    labels = read_class_labels(Path(labels_csv), problems)
    names = _NameIndex(data_root)
    rows = []
    for path in _datafile_paths(datafiles, problems):
        split = split_from_file_name(path.name)
        if split is None:
            problems.add(path.name, "cannot tell the split from the file name (include train, val or eval)")
            continue
        for where, entry in _read_entries(path, problems):
            located, reason = _locate(entry["wav"].strip(), data_root, names)
            if located is None:
                problems.add(where, reason)
                continue
            labels_field = entry.get("labels", "")
            mids = split_mids(labels_field) if isinstance(labels_field, str) else tuple(labels_field)
            rows.append(SourceRow(where, PurePosixPath(entry["wav"].strip()).stem, located, mids, split))
    clips = finalise_clips(rows, labels, data_root, source, problems, progress, check)
    return labels, clips
