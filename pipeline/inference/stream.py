"""A recording of any length as 16 kHz mono blocks, read block by block from disk.

:func:`pipeline.audio.read_audio` decodes a whole clip at once, which is right for 10-s training
clips and wrong for an hour-long recording. :class:`AudioStream` gives the same samples (channel mean,
then torchaudio's sinc resampling) while holding only one block and a little context in memory.

Why the blocks give the same samples as the whole file: torchaudio's resampler is a strided
convolution. With both rates divided by their gcd (44.1 kHz -> 16 kHz: 441 input samples make 160
output samples), output period ``k`` depends only on input ``[k*orig - width, (k+1)*orig + width)``.
So a block that starts and ends on a period boundary, resampled with at least ``width + orig``
samples of real context on each side, yields exactly the whole-file output for that stretch; at the
file's start and end the whole-file resampler pads with zeros, as the block does there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ..audio import SAMPLE_RATE, AudioError

BLOCK_SECONDS = 4.0  # decoded per read: memory per stream is about two blocks, whatever the length
LOWPASS_WIDTH, ROLLOFF = 6, 0.99  # torchaudio.functional.resample's defaults, which read_audio uses


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    wave = AF.resample(
        torch.from_numpy(samples), rate, SAMPLE_RATE, lowpass_filter_width=LOWPASS_WIDTH, rolloff=ROLLOFF
    )
    return wave.numpy().astype(np.float32, copy=False)


class AudioStream:
    """``for block in AudioStream(path)``: float32 mono 16 kHz blocks whose concatenation equals
    ``read_audio(path)`` (to float rounding). Errors are :class:`AudioError` naming the file."""

    def __init__(self, path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise AudioError(f"{self.path}: file not found")
        try:
            info = sf.info(self.path)
        except (sf.LibsndfileError, RuntimeError, TypeError) as error:
            raise AudioError(f"{self.path}: not readable as audio ({error})") from None
        if info.frames == 0:
            raise AudioError(f"{self.path}: empty audio (0 samples)")
        self.rate, self.channels, self.frames = int(info.samplerate), int(info.channels), int(info.frames)
        gcd = math.gcd(self.rate, SAMPLE_RATE)
        self.period_in, self.period_out = self.rate // gcd, SAMPLE_RATE // gcd
        # torchaudio's kernel half-width in input samples (its _get_sinc_resample_kernel), plus one period
        width = math.ceil(LOWPASS_WIDTH * self.period_in / (min(self.period_in, self.period_out) * ROLLOFF))
        self.context = self.period_in * math.ceil((width + self.period_in) / self.period_in)
        self.block = self.period_in * max(1, round(block_seconds * self.rate / self.period_in))

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    @property
    def samples_16k(self) -> int:
        """Samples the stream yields in all (the resampler's ceil(new * length / orig))."""
        return math.ceil(self.frames * SAMPLE_RATE / self.rate)

    def _decoded(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the file's own rate, checked as read_audio checks a whole clip."""
        read = 0
        try:
            with sf.SoundFile(self.path) as f:
                for block in f.blocks(blocksize=self.block, dtype="float32", always_2d=True):
                    mono = np.ascontiguousarray(
                        block.mean(axis=1) if block.shape[1] > 1 else block[:, 0], dtype=np.float32
                    )
                    if not np.isfinite(mono).all():
                        first = read + int(np.argmin(np.isfinite(mono)))
                        raise AudioError(f"{self.path}: NaN or infinite samples (first at {first / self.rate:.2f} s)")
                    read += len(mono)
                    yield mono
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError(f"{self.path}: decoding failed after {read / self.rate:.2f} s ({error})") from None
        if read == 0:
            raise AudioError(f"{self.path}: empty audio (0 samples)")

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.rate == SAMPLE_RATE:
            yield from self._decoded()
            return
        ratio = self.period_out / self.period_in
        buffer = np.zeros(0, dtype=np.float32)  # input samples from buffer_start on
        buffer_start = emitted = 0  # input indices; emitted is always a period boundary
        for block in self._decoded():
            buffer = np.concatenate([buffer, block])
            end = buffer_start + len(buffer)
            upto = (end - self.context) // self.period_in * self.period_in  # has full right context
            if upto <= emitted:
                continue
            left = max(0, emitted - self.context)
            out = _resample(buffer[left - buffer_start : upto + self.context - buffer_start], self.rate)
            skip = round((emitted - left) * ratio)
            yield out[skip : skip + round((upto - emitted) * ratio)]
            emitted = upto
            keep_from = emitted - self.context
            buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from
        left = max(0, emitted - self.context)
        tail = buffer[left - buffer_start :]
        if buffer_start + len(buffer) > emitted:
            yield _resample(tail, self.rate)[round((emitted - left) * ratio) :]
