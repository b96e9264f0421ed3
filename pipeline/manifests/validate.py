"""Shared checks for the format converters: collect every problem, then fail once.

A converter parses its metadata into :class:`SourceRow` records (each remembers the file and line it
came from) while noting malformed rows in a :class:`Problems` list. :func:`finalise_clips` then checks
paths, labels, duplicates and audio headers and raises a single :class:`ManifestError` naming every
offending row, so a user fixes their copy in one pass instead of one error per run.
"""

from __future__ import annotations

import csv
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..audio import AudioError, probe_audio
from ..progress import bar_options
from .records import Clip, Label, ManifestError

# What libsndfile can decode; the directory scans ignore everything else.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
# Header reads are IO-bound (often a network disk); threads overlap the waiting.
PROBE_THREADS = 8
# "dev.csv row 17" / "train.json data[3]": how problems name their place, parsed back to sort them
_ROW = re.compile(r"^(.*) (?:row (\d+)|data\[(\d+)\])$")


@dataclass
class Problems:
    """Human-readable problems, each starting with the file and row it concerns."""

    found: list[tuple[str, str]] = field(default_factory=list)  # (where, message)

    def add(self, where: str, message: str) -> None:
        self.found.append((where, message))

    def raise_if_any(self, source: str) -> None:
        """Raise one ManifestError; problems are listed file by file, in row order, as a user fixes them."""
        if not self.found:
            return
        file_order: dict[str, int] = {}
        keyed = []
        for n, (where, message) in enumerate(self.found):
            match = _ROW.match(where)
            name, row = (match.group(1), int(match.group(2) or match.group(3))) if match else (where, -1)
            keyed.append(((file_order.setdefault(name, len(file_order)), row, n), f"{where}: {message}"))
        raise ManifestError(source, [text for _, text in sorted(keyed)])


@dataclass(frozen=True)
class SourceRow:
    """One clip as the official metadata describes it, before its audio has been looked at."""

    where: str  # "dev.csv row 17": the place a user must fix when something is wrong
    clip_id: str
    path: str  # relative to DATA_ROOT, or absolute (AST json files)
    labels: tuple[str, ...]
    split: str = ""
    fold: int | None = None


# ------------------------------------------------------------------------------------------------
# Reading metadata tables
# ------------------------------------------------------------------------------------------------


def decoded_lines(path: Path, problems: Problems) -> list[str] | None:
    """The file's lines as text: UTF-8, with or without a byte-order mark (Excel writes one). A line
    that is not UTF-8 is reported with its number and None is returned: nothing is ever parsed
    from mis-decoded text."""
    lines = []
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            problems.add(
                f"{path.name} row {number}",
                f"not UTF-8 (byte 0x{raw[error.start]:02x} at column "
                f"{error.start + 1}); re-save {path} as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            )
            return None
    return lines


def read_table(
    path: Path,
    columns: list[str],
    problems: Problems,
    header: bool = True,
    skip_comments: bool = False,
    skip_initial_space: bool = False,
) -> list[tuple[int, dict]]:
    """Rows of a CSV as (line number, {column: value}); rows of the wrong width become problems.

    With ``header`` the file's first row must name at least ``columns`` (extra columns, like ESC-50's
    esc10/src_file/take, are kept); without it the rows are read positionally as ``columns``.
    Line numbers are the file's own, so "row 17" is line 17 in an editor. A quote left open swallows
    the lines after it into one field; that row is reported at the line where the quote opened.
    """
    name = path.name
    rows: list[tuple[int, dict]] = []
    text = decoded_lines(path, problems)
    if text is None:
        return rows
    # comment lines become blank (skipped below) rather than vanishing, so line numbers stay true
    lines = ("\n" if skip_comments and line.lstrip().startswith("#") else line for line in text)
    reader = csv.reader(lines, skipinitialspace=skip_initial_space)
    names = columns
    if header:
        first = next(reader, None)
        if first is None:
            problems.add(name, "empty file (expected a header row)")
            return rows
        names = [c.strip() for c in first]
        missing = [c for c in columns if c not in names]
        if missing:
            problems.add(
                f"{name} row {reader.line_num}",
                f"header lacks column(s) {', '.join(missing)} (header is {','.join(names)})",
            )
            return rows
    while True:
        opened = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.add(f"{name} row {opened}", f"unreadable CSV ({error})")
            break
        if reader.line_num > opened and any("\n" in v or "\r" in v for v in values):
            problems.add(
                f"{name} row {opened}",
                f"unbalanced quote: the quoted field runs on to line "
                f'{reader.line_num}; remove the stray " or close it on this line',
            )
            continue
        if not values or all(not v.strip() for v in values):
            continue  # blank lines carry no clip
        if len(values) != len(names):
            problems.add(
                f"{name} row {reader.line_num}",
                f"expected {len(names)} columns ({','.join(names)}), found {len(values)}",
            )
            continue
        rows.append((reader.line_num, {k: v.strip() for k, v in zip(names, values)}))
    return rows


def split_mids(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


# Words in a metadata file name that say which role its clips play (AudioSet lists, AST datafiles).
SPLIT_WORDS = {"train": "train", "eval": "eval", "test": "eval", "val": "val", "valid": "val", "validation": "val"}


def split_from_file_name(name: str) -> str | None:
    """'balanced_train_segments.csv' -> 'train', 'esc_eval_data_1.json' -> 'eval'; None if no single role."""
    words = "".join(ch if ch.isalpha() else " " for ch in Path(name).stem.lower()).split()
    roles = {SPLIT_WORDS[w] for w in words if w in SPLIT_WORDS}
    return roles.pop() if len(roles) == 1 else None


def check_vocabulary(entries: list[tuple[str, int | str, str, str]], problems: Problems, file_name: str) -> list[Label]:
    """(where, index, mid, name) entries -> Labels in index order; indices must be 0..N-1, mids unique."""
    labels: list[Label] = []
    seen_mid: dict[str, str] = {}
    seen_index: dict[int, str] = {}
    for where, index, mid, name in entries:
        try:
            index = int(index)
        except ValueError:
            problems.add(where, f"index {index!r} is not an integer")
            continue
        if not mid:
            problems.add(where, "empty mid")
            continue
        if mid in seen_mid:
            problems.add(where, f"duplicate mid {mid} (first at {seen_mid[mid]})")
            continue
        if index in seen_index:
            problems.add(where, f"duplicate index {index} (first at {seen_index[index]})")
            continue
        seen_mid[mid], seen_index[index] = where, where
        labels.append(Label(index, mid, name))
    labels.sort(key=lambda label: label.index)
    if labels and [label.index for label in labels] != list(range(len(labels))):
        gaps = sorted(set(range(len(labels))) - {label.index for label in labels})
        problems.add(file_name, f"class indices must run 0..{len(labels) - 1}; missing {gaps[:10]}")
    return labels


# ------------------------------------------------------------------------------------------------
# Paths
# ------------------------------------------------------------------------------------------------


class PathEscape(ValueError):
    """A metadata path that points outside DATA_ROOT."""


def relative_audio_path(data_root: Path, raw: str) -> str:
    """A metadata path -> POSIX path relative to DATA_ROOT; raises PathEscape if it leaves the root.

    Manifests must stay valid when DATA_ROOT moves, and a crafted '../' or symlink must not make the
    pipeline read (or pack) files the user never pointed it at.
    """
    if not raw.strip():
        raise PathEscape("empty path")
    root = Path(os.path.abspath(data_root))
    path = Path(raw)
    if path.is_absolute():
        lexical = Path(os.path.abspath(path))
        for base in (root, root.resolve()):
            if lexical.is_relative_to(base):
                path = lexical.relative_to(base)
                break
        else:
            raise PathEscape(f"absolute path {raw} is outside DATA_ROOT {root}")
    relative = PurePosixPath(path.as_posix())
    if ".." in relative.parts:
        raise PathEscape(f"path {raw} climbs out of DATA_ROOT with '..'")
    real = (root / relative).resolve()
    if not real.is_relative_to(root.resolve()):
        raise PathEscape(
            f"path {raw} leads through a symlink to {real}, outside DATA_ROOT {root} "
            "(pass the real directory as DATA_ROOT)"
        )
    return relative.as_posix()


def scan_audio_files(data_root: Path) -> list[str]:
    """Every audio file under DATA_ROOT (relative POSIX paths, sorted), found in one walk.

    Hidden names are skipped: macOS leaves '._x.wav' resource forks beside real files.
    Symlinked directories are not followed, like :func:`relative_audio_path` refuses them.
    """
    found = []
    for folder, dirs, files in os.walk(data_root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(folder).relative_to(data_root)
        for name in files:
            if not name.startswith(".") and name.lower().endswith(AUDIO_SUFFIXES):
                found.append((base / name).as_posix())
    return sorted(found)


# ------------------------------------------------------------------------------------------------
# From source rows to clips
# ------------------------------------------------------------------------------------------------


def _probe(path: Path, check: str = "full") -> tuple[float, int, int, str] | str:
    """(duration, sample rate, channels, fingerprint) of a clip fit for training, or why not. The
    full check decodes every sample once, for its checks and the fingerprint; a header-only check
    skips both (the clip then has no fingerprint, and stage two joins it by id unchecked)."""
    try:
        return probe_audio(path, check)
    except AudioError as error:
        return str(error).removeprefix(f"{path}: ")
    except OSError as error:  # e.g. permission denied
        return f"unreadable ({error.strerror or error})"


def finalise_clips(
    rows: list[SourceRow],
    labels: list[Label],
    data_root: Path,
    source: str,
    problems: Problems,
    progress: bool = True,
    check: str = "full",
) -> list[Clip]:
    """Check every row and its audio (``check``: full decode, or header only, see
    :func:`pipeline.audio.check_audio`); raise one ManifestError if anything is wrong.

    ``problems`` may already hold the converter's parse problems: they are reported together.
    """
    from tqdm import tqdm

    data_root = Path(data_root)
    known = {label.mid for label in labels}
    first_seen: dict[str, str] = {}
    accepted: list[tuple[SourceRow, str]] = []
    for row in rows:
        bad = False
        if not row.clip_id:
            problems.add(row.where, "empty clip id (file name)")
            bad = True
        elif row.clip_id in first_seen:
            problems.add(row.where, f"duplicate clip id {row.clip_id!r} (first at {first_seen[row.clip_id]})")
            bad = True
        else:
            first_seen[row.clip_id] = row.where
        for mid in row.labels:
            if mid not in known:
                problems.add(row.where, f"unknown mid {mid} (not in the label vocabulary)")
                bad = True
        if row.fold is not None and not 1 <= row.fold <= 5:
            problems.add(row.where, f"fold {row.fold} is not one of 1-5")
            bad = True
        try:
            relative = relative_audio_path(data_root, row.path)
        except PathEscape as error:
            problems.add(row.where, str(error))
            continue
        if not bad:
            accepted.append((row, relative))
    paths = [data_root / relative for _, relative in accepted]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        headers = list(
            tqdm(
                pool.map(lambda path: _probe(path, check), paths),
                total=len(paths),
                unit="file",
                desc=f"audio ({check} check)",
                **bar_options(progress and len(paths) >= 1000),
            )
        )
    clips = []
    for (row, relative), header in zip(accepted, headers):
        if isinstance(header, str):
            problems.add(row.where, f"audio {relative}: {header}")
            continue
        duration, sample_rate, channels, fingerprint = header
        clips.append(
            Clip(row.clip_id, relative, row.labels, row.split, row.fold, duration, sample_rate, channels, fingerprint)
        )
    problems.raise_if_any(source)
    return clips
