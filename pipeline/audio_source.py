"""A dataset's clips as waveforms, whatever holds them: packed shards, an audio file, or a row of an
AudioSet HDF5 file as labs keep it (:mod:`pipeline.audio_hdf5`). Both stages read audio through this."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, AudioChanged, PackedAudio, fingerprint_samples, read_audio
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
        """The clip's waveform, checked against the fingerprint its manifest row recorded (when it has
        one): the hash of the samples just decoded, so a file replaced, cut or re-encoded after
        `make manifests` is an AudioChanged error, never another signal under the clip's name."""
        if self.packed is not None and clip.clip_id in self.packed:
            wave, where = self.packed.read(clip.clip_id), f"clip {clip.clip_id} (packed audio)"
        else:
            wave, where = read_clip_audio(self.data_root, clip.path, self.rows), str(self.data_root / clip.path)
        expected = getattr(clip, "fingerprint", "")
        if expected:
            found = fingerprint_samples(wave)
            if found != expected:
                raise AudioChanged(
                    f"{where}: audio differs from its manifest row (fingerprint {found[:12]}, "
                    f"manifest {expected[:12]}, {len(wave) / SAMPLE_RATE:.2f} s decoded): the file "
                    "changed after `make manifests`; rebuild the manifest"
                )
        return wave


def read_clip_audio(data_root: str | os.PathLike, path: str, rows: HDF5Rows | None = None) -> np.ndarray:
    """One clip's float32 mono 16 kHz samples from its manifest path (a file, or an HDF5 row locator)."""
    if parse_locator(path) is not None:
        return (rows or HDF5Rows(data_root)).read(path)
    return read_audio(Path(data_root) / path)
