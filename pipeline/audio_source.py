"""A dataset's clips as waveforms, whatever holds them: packed shards, an audio file, or a row of an
AudioSet HDF5 file as labs keep it (:mod:`pipeline.audio_hdf5`). Both stages read audio through this."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import PackedAudio, read_audio
from .audio_hdf5 import HDF5Rows, parse_locator


class AudioSource:
    """From the dataset's packed HDF5 shards when it has them, else from each clip's own place (a file
    under DATA_ROOT, or an HDF5 row named by its locator; handles opened per process)."""

    def __init__(self, manifest):
        self.data_root = Path(manifest.data_root)
        shards = manifest.info.get("packed") or []
        self.packed = PackedAudio(shards) if shards else None
        self.rows = HDF5Rows(self.data_root)

    def read(self, clip) -> np.ndarray:
        if self.packed is not None and clip.clip_id in self.packed:
            return self.packed.read(clip.clip_id)
        return read_clip_audio(self.data_root, clip.path, self.rows)


def read_clip_audio(data_root: str | os.PathLike, path: str, rows: HDF5Rows | None = None) -> np.ndarray:
    """One clip's float32 mono 16 kHz samples from its manifest path (a file, or an HDF5 row locator)."""
    if parse_locator(path) is not None:
        return (rows or HDF5Rows(data_root)).read(path)
    return read_audio(Path(data_root) / path)
