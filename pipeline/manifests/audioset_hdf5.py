"""AudioSet from the HDF5 files labs hold (PaSST/EfficientAT mp3, PANNs waveforms; see :mod:`pipeline.audio_hdf5`).

Every ``*.hdf``/``*.h5``/``*.hdf5`` file at the top of DATA_ROOT or one folder down is read (our own packed
shards excepted). A file whose name contains ``eval`` holds eval clips, every other file train clips (the
val split is carved from train at training time, as for every split-based set). Labels come from the file's
``target`` (unpacked for the mp3 layout) in the order of LABELS (``class_labels_indices.csv``, any number of
classes); with segment lists (AUDIOSET_SEGMENTS) each clip's labels are compared with its list's.

Clip ids, one rule (so that copies in either layout, and WAV copies built with FORMAT=audioset, join):
the stored ``audio_name`` loses its folder (``00/``), its suffix and the one leading ``Y`` the downloaders
add; the next 11 characters are the YouTube id, optionally followed by ``_<start>[_<end>]`` in seconds. The
clip id is ``<YouTube id>_<start with 3 decimals>``, the start taken from the segment lists when given, else
from the name; when neither gives one, the id is the YouTube id alone (AudioSet takes at most one segment per
video). The original name stays in the clip's path, ``<file>#<row>#<audio_name>``.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np

from ..audio import PACK_FORMAT, AudioError, fingerprint_samples, to_mono_16k
from ..audio_hdf5 import (
    HDF5_SUFFIXES,
    decoded_name,
    header_of,
    layout_of,
    row_data,
    row_locator,
    samples_from,
    waveform_rate,
)
from ..progress import bar_options
from .audioset import LABELS_FILE, Segment, _find_one, read_class_labels, read_segments
from .records import Clip, Label
from .validate import PROBE_THREADS, Problems

FORMAT = "audioset-hdf5"
_NAME = re.compile(r"^Y?(?P<ytid>[A-Za-z0-9_-]{11})(?:_(?P<start>\d+(?:\.\d+)?)(?:_(?P<end>\d+(?:\.\d+)?))?)?$")
_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg")


def youtube_id_and_start(audio_name: str) -> tuple[str, float | None] | None:
    """('--4gqARaEJE', None) from '00/Y--4gqARaEJE.mp3', (..., 30.0) from 'Y--4gqARaEJE_30.000_40.000.wav';
    None when the name holds no YouTube id."""
    stem = PurePosixPath(audio_name).name
    if stem.lower().endswith(_SUFFIXES):
        stem = stem.rsplit(".", 1)[0]
    match = _NAME.match(stem)
    if match is None:
        return None
    return match["ytid"], float(match["start"]) if match["start"] is not None else None


def normalised_clip_id(ytid: str, start: float | None) -> str:
    """The module docstring's rule; equal to FORMAT=audioset's ``Segment.clip_id`` when the start is known."""
    return ytid if start is None else f"{ytid}_{start:.3f}"


@dataclass
class HDF5Scan:
    labels: list[Label]
    clips: list[Clip]
    files: list[str]
    empty_rows: int = 0  # rows a packer left blank (PANNs keeps a row for every listed clip it could not fetch)
    without_start: int = 0  # clips whose id is the YouTube id alone
    layouts: dict[str, str] = field(default_factory=dict)


def hdf5_files(data_root: Path) -> list[Path]:
    """The AudioSet HDF5 files under DATA_ROOT (top level and one folder down), our packed shards excepted."""
    import h5py

    found = []
    for suffix in HDF5_SUFFIXES:
        found += _find_one(data_root, f"*{suffix}")
    keep = []
    for path in sorted(set(found)):
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") == PACK_FORMAT:
                    continue
        except OSError:
            pass  # reported when the file is read
        keep.append(path)
    return keep


def _labels_of(targets: np.ndarray, layout: str, num_classes: int, where: str, problems: Problems) -> np.ndarray | None:
    """[rows, classes] bool from the stored targets, or None (reported) when the width does not fit LABELS."""
    if targets.ndim != 2:
        problems.add(where, f"target has shape {targets.shape}, expected [rows, classes]")
        return None
    if layout == "mp3":
        width = (num_classes + 7) // 8
        if targets.shape[1] != width:
            problems.add(
                where,
                f"target holds {targets.shape[1]} bytes per clip; {num_classes} classes (LABELS) pack "
                f"into {width} (np.packbits): is LABELS the vocabulary the file was packed with?",
            )
            return None
        return np.unpackbits(targets.astype(np.uint8), axis=-1).astype(bool)
    if targets.shape[1] != num_classes:
        problems.add(where, f"target has {targets.shape[1]} classes per clip, LABELS {num_classes}")
        return None
    return targets.astype(bool)


def _probe(data: np.ndarray, layout: str, rate: int | None, source: str, check: str):
    """(duration, rate, channels, fingerprint) as the WAV path's probe gives them, or why not (text)."""
    try:
        if check == "header":
            return (*header_of(data, layout, rate, source), "")
        samples, sample_rate = samples_from(data, layout, rate, source)
        wave = to_mono_16k(samples, sample_rate, source=source)
        return samples.shape[0] / sample_rate, sample_rate, samples.shape[1], fingerprint_samples(wave)
    except AudioError as error:
        return str(error).removeprefix(f"{source}: ")


def _probe_row(handle, layout: str, rate: int | None, relative: str, check: str, row: int):
    return _probe(row_data(handle, layout, row), layout, rate, f"{relative} row {row}", check)


def scan_audioset_hdf5(
    data_root: str | Path,
    labels_csv: str | Path | None = None,
    segments: list[str | Path] | None = None,
    progress: bool = True,
    check: str = "full",
) -> HDF5Scan:
    """Every row of every AudioSet HDF5 file under DATA_ROOT as a checked Clip; one ManifestError naming
    every bad row (file and row from 0) otherwise."""
    import h5py
    from tqdm import tqdm

    data_root = Path(data_root)
    source = f"AudioSet HDF5 at {data_root}"
    problems = Problems()
    labels_path = Path(labels_csv) if labels_csv else next(iter(_find_one(data_root, LABELS_FILE)), None)
    if labels_path is None:
        problems.add(str(data_root), f"no {LABELS_FILE} found; pass it with LABELS=")
    files = hdf5_files(data_root)
    if not files:
        problems.add(
            str(data_root),
            f"no AudioSet HDF5 files ({', '.join('*' + s for s in HDF5_SUFFIXES)}) at the top or one folder down",
        )
    problems.raise_if_any(source)
    assert labels_path is not None  # raise_if_any raised for the missing labels file
    labels = read_class_labels(labels_path, problems)
    by_ytid: dict[str, Segment] = {}
    for path in [Path(p) for p in segments or []]:
        if not path.is_file():
            problems.add(str(path), "segment list not found")
            continue
        for segment in read_segments(path, problems):
            by_ytid.setdefault(segment.ytid, segment)
    problems.raise_if_any(source)
    mids = [label.mid for label in labels]
    scan = HDF5Scan(labels, [], [path.relative_to(data_root).as_posix() for path in files])
    first_seen: dict[str, str] = {}
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        for path, relative in zip(files, scan.files):
            try:
                handle = h5py.File(path, "r")
            except OSError as error:
                problems.add(relative, f"not readable as HDF5 ({error})")
                continue
            with handle:
                try:
                    layout = layout_of(handle, relative)
                    rate = waveform_rate(handle, relative) if layout == "waveform" else None
                except AudioError as error:
                    problems.add(relative, str(error).removeprefix(f"{relative}: "))
                    continue
                scan.layouts[relative] = layout
                names = [decoded_name(raw) for raw in handle["audio_name"][:]]
                targets = _labels_of(np.asarray(handle["target"][:]), layout, len(mids), relative, problems)
                if targets is None:
                    continue
                if len(targets) != len(names):
                    problems.add(relative, f"target has {len(targets)} rows, audio_name {len(names)}")
                    continue
                split = "eval" if "eval" in path.name.lower() else "train"
                rows = []
                for row, name in enumerate(names):
                    where = f"{relative} row {row}"
                    if not name:
                        scan.empty_rows += 1
                        continue
                    parsed = youtube_id_and_start(name)
                    if parsed is None:
                        problems.add(where, f"audio_name {name!r} holds no YouTube id (expected e.g. Y--4gqARaEJE.mp3)")
                        continue
                    ytid, start = parsed
                    if targets[row, len(mids) :].any():
                        problems.add(where, f"target sets bits beyond the {len(mids)} classes of LABELS")
                        continue
                    clip_mids = tuple(mids[i] for i in np.flatnonzero(targets[row, : len(mids)]))
                    if by_ytid:
                        listed = by_ytid.get(ytid)
                        if listed is None:
                            problems.add(where, f"{name}: YouTube id {ytid} is in none of the segment lists")
                            continue
                        if start is not None and abs(start - listed.start) > 1e-3:
                            problems.add(where, f"{name}: start {start:.3f} s, {listed.where} says {listed.start:.3f}")
                            continue
                        if set(clip_mids) != set(listed.labels):
                            problems.add(
                                where,
                                f"{name}: target holds {sorted(clip_mids)}, {listed.where} lists "
                                f"{sorted(listed.labels)}",
                            )
                            continue
                        start = listed.start
                    clip_id = normalised_clip_id(ytid, start)
                    if clip_id in first_seen:
                        problems.add(where, f"duplicate clip id {clip_id!r} ({name}; first at {first_seen[clip_id]})")
                        continue
                    first_seen[clip_id] = where
                    scan.without_start += start is None
                    rows.append((row, name, clip_id, clip_mids))
                probes = pool.map(partial(_probe_row, handle, layout, rate, relative, check), [r[0] for r in rows])
                for (row, name, clip_id, clip_mids), probe in zip(
                    rows,
                    tqdm(
                        probes,
                        total=len(rows),
                        unit="clip",
                        desc=f"{relative} ({check} check)",
                        **bar_options(progress and len(rows) >= 1000),
                    ),
                ):
                    if isinstance(probe, str):
                        problems.add(f"{relative} row {row}", f"audio {name}: {probe}")
                        continue
                    duration, sample_rate, channels, fingerprint = probe
                    scan.clips.append(
                        Clip(
                            clip_id,
                            row_locator(relative, row, name),
                            clip_mids,
                            split,
                            None,
                            duration,
                            sample_rate,
                            channels,
                            fingerprint,
                        )
                    )
    problems.raise_if_any(source)
    return scan
