"""Entry `audioset_decode`: clips/s one core decodes from AudioSet as labs hold it (PaSST/EfficientAT mp3 in
HDF5, PANNs int16 waveforms in HDF5) against our packed int16 shards and per-clip WAV files.

Every path ends in the same float32 mono 16 kHz waveform through the readers both stages use
(:class:`pipeline.audio_hdf5.HDF5Rows`, :class:`pipeline.audio.PackedAudio`, :func:`pipeline.audio.read_audio`),
one torch thread, one process: the figure says how many decoding cores one GPU's input rate needs.
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass

import numpy as np

from pipeline.testing import noise_and_tones

from .harness import (
    RATIO,
    BenchContext,
    Figure,
    Measured,
    interleaved,
    median,
    paired_ratio,
)


@dataclass(frozen=True)
class DecodeParams:
    clips: int = 60
    clip_seconds: float = 10.0
    sample_rate: int = 32000  # the rate PaSST's mp3s and PANNs' waveforms are stored at
    repeats: int = 3


DECODE_FULL = DecodeParams()
DECODE_QUICK = DecodeParams(clips=8, clip_seconds=4.0, repeats=2)


@dataclass(frozen=True)
class _ClipRef:
    clip_id: str
    path: str


def run(ctx: BenchContext, params: DecodeParams) -> Measured:
    import h5py
    import soundfile as sf
    import torch

    from pipeline.audio import PackedAudio, pack_clips, read_audio
    from pipeline.audio_hdf5 import HDF5Rows, row_locator

    torch.set_num_threads(1)
    root = ctx.folder("audioset_decode")
    rng = np.random.default_rng(0)
    waves = [noise_and_tones(params.clip_seconds, params.sample_rate, rng) for _ in range(params.clips)]
    names = [f"Y{i:011d}" for i in range(params.clips)]
    (root / "wav").mkdir()
    for name, wave in zip(names, waves):
        sf.write(root / "wav" / f"{name}.wav", wave, params.sample_rate, subtype="PCM_16")
    with h5py.File(root / "balanced_train_segments_mp3.hdf", "w") as f:
        mp3 = f.create_dataset("mp3", shape=(params.clips,), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        f.create_dataset("audio_name", data=np.array([f"{n}.mp3".encode() for n in names], dtype="S20"))
        f.create_dataset("target", data=np.zeros((params.clips, 66), dtype=np.uint8))
        for i, wave in enumerate(waves):
            buffer = _io.BytesIO()
            sf.write(buffer, wave, params.sample_rate, format="MP3")
            mp3[i] = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    with h5py.File(root / "balanced_train.h5", "w") as f:
        f.create_dataset("audio_name", data=np.array([f"{n}.wav".encode() for n in names], dtype="S20"))
        f.create_dataset("waveform", data=np.stack([(np.clip(w, -1, 1) * 32767).astype(np.int16) for w in waves]))
        f.create_dataset("target", data=np.zeros((params.clips, 527), dtype=bool))
        f.attrs.create("sample_rate", data=params.sample_rate, dtype=np.int32)
    refs = [_ClipRef(n, f"wav/{n}.wav") for n in names]
    packed = PackedAudio(pack_clips(refs, root, root / "packed", progress=False))
    rows = HDF5Rows(root)
    mp3_rows = [row_locator("balanced_train_segments_mp3.hdf", i, f"{n}.mp3") for i, n in enumerate(names)]
    wave_rows = [row_locator("balanced_train.h5", i, f"{n}.wav") for i, n in enumerate(names)]
    order = rng.permutation(params.clips)
    calls = {
        "mp3_hdf5": lambda: [rows.read(mp3_rows[i]) for i in order],
        "panns_int16_hdf5": lambda: [rows.read(wave_rows[i]) for i in order],
        "packed_int16": lambda: [packed.read(names[i]) for i in order],
        "wav": lambda: [read_audio(root / refs[i].path) for i in order],
    }
    seconds = interleaved(calls, params.repeats, warmup=1)
    per_s = {name: params.clips / median(s) for name, s in seconds.items()}
    figures = [
        Figure(
            "mp3-in-HDF5 decode / packed int16 shard read, s per clip",
            paired_ratio(seconds["mp3_hdf5"], seconds["packed_int16"]),
            RATIO,
        ),
        Figure(
            "mp3-in-HDF5 decode / 32 kHz WAV read, s per clip", paired_ratio(seconds["mp3_hdf5"], seconds["wav"]), RATIO
        ),
        Figure(
            "PANNs int16 HDF5 row / 32 kHz WAV read, s per clip",
            paired_ratio(seconds["panns_int16_hdf5"], seconds["wav"]),
            RATIO,
        ),
    ]
    details = {f"{name}_clips_per_s_one_core": value for name, value in per_s.items()}
    details["mp3_kb_per_clip"] = (root / "balanced_train_segments_mp3.hdf").stat().st_size / params.clips / 1024
    note = (
        f"{params.clips} generated {params.clip_seconds:g}-s clips at {params.sample_rate} Hz, stored four ways: "
        "mp3 bytes in an HDF5 file in PaSST's layout (libsndfile's mp3 encoder at its default quality), "
        "int16 rows in PANNs' layout, our int16 16 kHz packed shard, and 16-bit WAVs. Each read gives the float32 "
        "mono 16 kHz waveform (the HDF5 and WAV paths resample 32 -> 16 kHz with torchaudio; the packed shard "
        "is already at 16 kHz). One torch thread, one process, page cache warm; median of "
        f"{params.repeats} interleaved passes; ratio = seconds per pass of the first / the second."
    )
    return Measured(figures, {f"{k}_pass_s": v for k, v in seconds.items()}, details, note)
