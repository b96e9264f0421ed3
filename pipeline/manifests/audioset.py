"""AudioSet: the official label and segment lists, joined with whatever audio this lab downloaded.

Google distributes only YouTube ids, so every copy lacks a different set of videos and names its
files its own way (https://github.com/YuanGongND/ast/issues/85, https://github.com/YuanGongND/ast/issues/108).
The converter therefore searches DATA_ROOT once, accepts the common namings, keeps the segments it
finds and records the rest in ``missing_segments.csv`` rather than failing: results on AudioSet are
only comparable when everyone knows which clips were used.

Inputs: ``class_labels_indices.csv`` (index,mid,display_name) and segment lists such as
``balanced_train_segments.csv`` (3 '#' lines, then ``YTID, start_seconds, end_seconds, "labels"``);
the file name decides the split (``*train*`` -> train, ``eval`` -> eval).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .records import Clip, Label
from .validate import (
    Problems,
    SourceRow,
    check_vocabulary,
    finalise_clips,
    read_table,
    scan_audio_files,
    split_from_file_name,
    split_mids,
)

LABELS_FILE = "class_labels_indices.csv"
SEGMENT_COLUMNS = ["YTID", "start_seconds", "end_seconds", "positive_labels"]


@dataclass(frozen=True)
class Segment:
    """One row of a segment list."""

    where: str
    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]
    split: str

    @property
    def clip_id(self) -> str:
        return f"{self.ytid}_{self.start:.3f}"

    def file_stems(self) -> list[str]:
        """File names (without suffix) that labs use for this segment, most common first."""
        y, s, e = self.ytid, self.start, self.end
        return [
            f"{y}_{s:.3f}",
            f"{y}_{s:.3f}_{e:.3f}",
            f"{y}_{int(s)}_{int(e)}",
            f"{y}_{int(s)}",
            f"{y}_{int(s * 1000)}_{int(e * 1000)}",
            f"Y{y}_{s:.3f}_{e:.3f}",
            y,
            f"Y{y}",
        ]


@dataclass
class AudioSetScan:
    labels: list[Label]
    clips: list[Clip]
    missing: list[Segment]
    segment_files: list[str]


def read_class_labels(path: Path, problems: Problems) -> list[Label]:
    """The AudioSet/AST label CSV (header index,mid,display_name) -> Labels in index order."""
    if not path.is_file():
        problems.add(str(path), "label file not found")
        return []
    rows = read_table(path, ["index", "mid", "display_name"], problems)
    entries = [(f"{path.name} row {line}", r["index"], r["mid"], r["display_name"]) for line, r in rows]
    return check_vocabulary(entries, problems, path.name)


def read_segments(path: Path, problems: Problems) -> list[Segment]:
    split = split_from_file_name(path.name)
    if split is None:
        problems.add(
            path.name,
            "cannot tell the split from the file name (expected e.g. "
            "balanced_train_segments.csv, unbalanced_train_segments.csv or eval_segments.csv)",
        )
        return []
    segments = []
    for line, r in read_table(
        path, SEGMENT_COLUMNS, problems, header=False, skip_comments=True, skip_initial_space=True
    ):
        where = f"{path.name} row {line}"
        try:
            start, end = float(r["start_seconds"]), float(r["end_seconds"])
        except ValueError:
            problems.add(where, f"start/end {r['start_seconds']!r}, {r['end_seconds']!r} are not numbers")
            continue
        if not r["YTID"]:
            problems.add(where, "empty YTID")
            continue
        segments.append(Segment(where, r["YTID"], start, end, split_mids(r["positive_labels"]), split))
    return segments


def _find_one(data_root: Path, pattern: str) -> list[Path]:
    """Metadata sits at the top of DATA_ROOT or one folder down (e.g. metadata/)."""
    return sorted(data_root.glob(pattern)) + sorted(data_root.glob(f"*/{pattern}"))


def scan_audioset(
    data_root: str | Path,
    labels_csv: str | Path | None = None,
    segments: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> AudioSetScan:
    """Join the segment lists with the audio present under DATA_ROOT; see the module docstring."""
    data_root = Path(data_root)
    source = f"AudioSet at {data_root}"
    problems = Problems()
    labels_path = Path(labels_csv) if labels_csv else next(iter(_find_one(data_root, LABELS_FILE)), None)
    segment_paths = [Path(p) for p in segments] if segments else _find_one(data_root, "*segments*.csv")
    if labels_path is None:
        problems.add(str(data_root), f"no {LABELS_FILE} found; pass it with LABELS=")
    if not segment_paths:
        problems.add(str(data_root), "no *segments*.csv found; pass them with AUDIOSET_SEGMENTS=a.csv,b.csv")
    problems.raise_if_any(source)
    assert labels_path is not None  # raise_if_any raised for the missing labels file
    labels = read_class_labels(labels_path, problems)
    all_segments: list[Segment] = []
    for path in segment_paths:
        if path.is_file():
            all_segments += read_segments(path, problems)
        else:
            problems.add(str(path), "segment list not found")
    stem_to_path: dict[str, str] = {}
    for relative in scan_audio_files(data_root):
        stem_to_path.setdefault(PurePosixPath(relative).stem, relative)  # sorted walk: first copy wins
    rows, missing = [], []
    for segment in all_segments:
        found = next((stem_to_path[s] for s in segment.file_stems() if s in stem_to_path), None)
        if found is None:
            missing.append(segment)
        else:
            rows.append(SourceRow(segment.where, segment.clip_id, found, segment.labels, segment.split))
    if all_segments and not rows:
        problems.add(
            str(data_root),
            f"no audio found for any of {len(all_segments)} segments (looked for files "
            f"named like {', '.join(all_segments[0].file_stems()[:3])} with suffix .wav/.flac)",
        )
    clips = finalise_clips(rows, labels, data_root, source, problems, progress, check)
    return AudioSetScan(labels, clips, missing, [p.name for p in segment_paths])


def prepare_audioset(
    data_root: str | Path,
    labels_csv: str | Path | None = None,
    segments: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> tuple[list[Label], list[Clip]]:
    """(labels, clips found on disk); use :func:`scan_audioset` to also get the missing segments."""
    scan = scan_audioset(data_root, labels_csv, segments, progress, check)
    return scan.labels, scan.clips


def missing_segments_csv(missing: list[Segment]) -> str:
    """The segments without audio, as CSV text (one row each, with the list and row they came from)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "YTID", "start_seconds", "end_seconds", "split", "source"])
    for s in missing:
        writer.writerow([s.clip_id, s.ytid, f"{s.start:.3f}", f"{s.end:.3f}", s.split, s.where])
    return buf.getvalue()
