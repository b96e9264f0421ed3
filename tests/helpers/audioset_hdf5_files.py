"""Tiny AudioSet HDF5 files in the two layouts labs hold, written the way the upstream packers write them:
PaSST's create_h5pymp3_dataset.py (audio_name S20 'Y<id>.mp3', unbalanced names with a part folder '00/';
mp3 as variable-length uint8; target = np.packbits(bool labels, axis=-1)) and PANNs' pack_waveforms_to_hdf5
(audio_name S20 'Y<id>.wav'; waveform rows of 10 s at 32 kHz, int16 = float * 32767; target bool;
a sample_rate attribute; rows it found no audio for stay blank)."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import soundfile as sf

MIDS = ["/m/a0", "/m/a1", "/m/a2", "/m/a3", "/m/a4", "/m/a5", "/m/a6", "/m/a7", "/m/a8", "/m/a9", "/m/b0"]
RATE = 32000
SECONDS = 2  # the real rows hold 10 s; a few seconds keep the tests fast

# (YouTube id, start, labels, file role); ids are 11 characters, some begin with '-' or 'Y' like real ones
CLIPS = [
    ("--4gqARaEJE", 0.0, [0, 3], "balanced_train"),
    ("YxlGt805lTA", 30.0, [1], "balanced_train"),
    ("-0SdAVK79lg", 30.0, [2, 10], "balanced_train"),
    ("0ABcdEfGh_i", 10.0, [4], "unbalanced_train"),
    ("zzZz-1234_5", 0.0, [5, 6], "unbalanced_train"),
    ("eVal0000001", 20.0, [7], "eval"),
    ("eVal0000002", 0.0, [8, 9], "eval"),
]


def wave(index: int) -> np.ndarray:
    """A deterministic few-second signal per clip (a tone plus noise, different for every clip)."""
    t = np.arange(RATE * SECONDS) / RATE
    rng = np.random.default_rng(index)
    return (0.3 * np.sin(2 * np.pi * (220 + 110 * index) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def mp3_bytes(samples: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, format="MP3")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def multi_hot(labels: list[int], num_classes: int = len(MIDS)) -> np.ndarray:
    target = np.zeros(num_classes, dtype=bool)
    target[labels] = True
    return target


def write_labels(path: Path, mids=MIDS) -> Path:
    path.write_text("index,mid,display_name\n" + "".join(f'{i},{m},"Class {i}"\n' for i, m in enumerate(mids)))
    return path


def write_segments(folder: Path, clips=CLIPS) -> list[Path]:
    paths = []
    for role in sorted({c[3] for c in clips}):
        lines = ["# Segments csv created", "# num_ytids=0", "# YTID, start_seconds, end_seconds, positive_labels"]
        for ytid, start, labels, r in clips:
            if r == role:
                lines.append(f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(MIDS[i] for i in labels)}"')
        path = folder / f"{role}_segments.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def write_mp3_layout(folder: Path, clips=CLIPS, corrupt: set[str] = frozenset()) -> dict[str, Path]:
    """<role>_segments_mp3.hdf files; ytids in ``corrupt`` get truncated mp3 bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role in sorted({c[3] for c in clips}):
        rows = [(i, c) for i, c in enumerate(clips) if c[3] == role]
        path = folder / f"{role}_segments_mp3.hdf"
        with h5py.File(path, "w") as hf:
            names = hf.create_dataset("audio_name", shape=(len(rows),), dtype="S20")
            mp3 = hf.create_dataset("mp3", shape=(len(rows),), dtype=h5py.vlen_dtype(np.dtype("uint8")))
            targets = np.packbits(np.stack([multi_hot(c[2]) for _, c in rows]), axis=-1)
            target = hf.create_dataset("target", shape=targets.shape, dtype=targets.dtype)
            for n, (i, (ytid, _, _, _)) in enumerate(rows):
                prefix = "00/" if role.startswith("unbalanced") else ""
                names[n] = f"{prefix}Y{ytid}.mp3"
                data = mp3_bytes(wave(i))
                mp3[n] = data[: len(data) // 5] if ytid in corrupt else data
                target[n] = targets[n]
        files[role] = path
    return files


def write_waveform_layout(folder: Path, clips=CLIPS, dtype=np.int16, blank_rows: int = 1) -> dict[str, Path]:
    """PANNs files (<role>.h5): rows at 32 kHz, fixed length, plus ``blank_rows`` rows left empty."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role in sorted({c[3] for c in clips}):
        rows = [(i, c) for i, c in enumerate(clips) if c[3] == role]
        path = folder / f"{role}.h5"
        total = len(rows) + blank_rows
        with h5py.File(path, "w") as hf:
            hf.create_dataset("audio_name", shape=(total,), dtype="S20")
            hf.create_dataset("waveform", shape=(total, RATE * SECONDS), dtype=dtype)
            hf.create_dataset("target", shape=(total, len(MIDS)), dtype=bool)
            hf.attrs.create("sample_rate", data=RATE, dtype=np.int32)
            for n, (i, (ytid, _, labels, _)) in enumerate(rows):
                hf["audio_name"][n] = f"Y{ytid}.wav".encode()
                samples = wave(i)
                hf["waveform"][n] = (
                    (np.clip(samples, -1, 1) * 32767.0).astype(np.int16) if dtype == np.int16 else samples
                )
                hf["target"][n] = multi_hot(labels)
        files[role] = path
    return files
