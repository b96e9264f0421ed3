"""Cutting a stream of samples into the model's input windows, with a hop, as the blocks arrive.

The rule, in one line: windows of the model's own length start at 0, HOP, 2 HOP, ... until one
reaches the end of the recording. The last window may be shorter than the model's input; it is then
padded exactly as a short training clip is (zero features past its last frame), and so is a
recording shorter than one window. A recording of ``n`` samples therefore gets
``1 + ceil(max(0, n - window) / hop)`` windows (:func:`window_count`), every sample falls in one,
and memory holds at most one window plus one block, however long the recording.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..config import FrontEndConfig
from ..features import samples_for_frames


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # first sample, at the front end's rate
    samples: np.ndarray  # float32, at most the window's length (shorter only at the recording's end)


def window_length(front_end: FrontEndConfig) -> int:
    """Samples that fill exactly the model's input (target_length fbank frames)."""
    return samples_for_frames(front_end.target_length, front_end)


def hop_samples(front_end: FrontEndConfig, hop_seconds: float | None) -> int:
    """HOP in samples; None: half a window."""
    window = window_length(front_end)
    if hop_seconds is None:
        return max(1, window // 2)
    if not math.isfinite(hop_seconds) or hop_seconds <= 0:
        raise ValueError(f"HOP must be a positive number of seconds, got {hop_seconds!r}")
    return max(1, round(hop_seconds * front_end.sample_rate))


def window_count(total_samples: int, window: int, hop: int) -> int:
    return 1 + math.ceil(max(0, total_samples - window) / hop)


def windows(blocks: Iterable[np.ndarray], window: int, hop: int) -> Iterator[Window]:
    """Windows over the concatenation of ``blocks``, in order, as soon as each is complete."""
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # sample index of buffer[0]
    index, total = 0, 0
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else np.asarray(block, dtype=np.float32)
        total += len(block)
        while index * hop + window <= total:
            start = index * hop
            yield Window(index, start, buffer[start - buffer_start : start - buffer_start + window].copy())
            index += 1
            drop = min(index * hop, total) - buffer_start  # nothing before the next window's start is needed
            if drop > 0:
                buffer, buffer_start = buffer[drop:], buffer_start + drop
    # the tail: windows that run past the end, until one reaches it (at least one per recording)
    while index == 0 or (index - 1) * hop + window < total:
        start = index * hop
        if start >= total:
            break
        yield Window(index, start, buffer[start - buffer_start :].copy())
        index += 1
