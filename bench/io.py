"""Entry `packed_vs_wav`: reading clips from packed HDF5 shards vs one WAV file per clip.

The WAVs are 44.1 kHz 16-bit like FSD50K's, so the per-file path pays decoding plus resampling to
16 kHz on every read, as it does on real data; packing pays that once (:func:`pipeline.audio.pack_clips`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.testing import write_generated_clips

from .harness import RATIO, BenchContext, Figure, Goal, Measured, interleaved, median, paired_ratio, timed


@dataclass(frozen=True)
class PackedParams:
    clips: int = 200
    clip_seconds: float = 10.0
    sample_rate: int = 44100
    repeats: int = 3


PACKED_FULL = PackedParams()
PACKED_QUICK = PackedParams(clips=30, repeats=2)


@dataclass(frozen=True)
class _ClipRef:
    """What pack_clips needs of a clip: its id and its path under the data root."""

    clip_id: str
    path: str


def run(ctx: BenchContext, params: PackedParams) -> Measured:
    from pipeline.audio import PackedAudio, pack_clips, read_audio

    root = ctx.folder("packed_vs_wav")
    wavs = write_generated_clips(root / "audio", params.clips, params.clip_seconds, params.sample_rate)
    refs = [_ClipRef(p.stem, str(p.relative_to(root))) for p in wavs]
    pack_s, shards = timed(lambda: pack_clips(refs, root, root / "packed", progress=False))
    packed = PackedAudio(shards)
    order = np.random.default_rng(0).permutation(params.clips)

    def read_wavs():
        for i in order:
            read_audio(wavs[i])

    def read_packed():
        for i in order:
            packed.read(refs[i].clip_id)

    # the warm-up pass reads every file once, so both sides run from a warm page cache
    seconds = interleaved({"wav": read_wavs, "packed": read_packed}, params.repeats, warmup=1)
    ratio = paired_ratio(seconds["wav"], seconds["packed"])
    wav_bytes = sum(p.stat().st_size for p in wavs)
    packed_bytes = sum(s.stat().st_size for s in shards)
    details = {
        "wav_clips_per_s": params.clips / median(seconds["wav"]),
        "packed_clips_per_s": params.clips / median(seconds["packed"]),
        "pack_s": pack_s,
        "wav_mb": wav_bytes / 2**20,
        "packed_mb": packed_bytes / 2**20,
    }
    note = (
        f"{params.clips} generated {params.clip_seconds:g}-s clips written as {params.sample_rate} Hz 16-bit "
        "WAVs, read in one random order by read_audio (soundfile decode + resample to 16 kHz mono float32) "
        "vs PackedAudio.read from the int16 16 kHz HDF5 shard that pack_clips wrote "
        f"({pack_s:.1f} s to pack). Both give the same float32 16 kHz waveform. Page cache warm for both "
        f"(a warm-up pass read everything first): on a cold disk the packed file's "
        f"{packed_bytes / 2**20:.0f} MB against {wav_bytes / 2**20:.0f} MB of WAVs and one file instead of "
        f"{params.clips} would widen the gap. Median of {params.repeats} interleaved passes, "
        "ratio = WAV seconds / packed seconds."
    )
    return Measured(
        [Figure("packed HDF5 / per-file WAV, clips/s", ratio, RATIO, Goal(">=", 3.0))],
        {f"{k}_pass_s": v for k, v in seconds.items()},
        details,
        note,
    )
