"""Mixing events into clips: background noise, event placement, SNR and output level.

A clip is a pure function of its generator, and each clip gets its own generator seeded from
``(corpus seed, stream, clip index)`` (:func:`clip_rng`), so the corpus is byte-identical whatever
order or how many processes render it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .classes import TEMPORAL, CorpusVersion, class_by_label
from .events import synthesise_event
from .signals import active_rms, add_at, coloured_noise, n_samples

# Independent random streams: changing how one split is drawn never shifts another split's clips.
STREAM_NAMES, STREAM_FSD_DEV, STREAM_FSD_EVAL, STREAM_ESC_SOURCE, STREAM_ESC_TAKE = range(5)

ESC_CLIP_S = 5.0  # ESC-50's clips are all 5 s
# Event level over the background while the event sounds. Tonal events stay visible well below
# 0 dB (their energy sits in a few bins), so the low end is where noisy classes get hard.
SNR_DB = (0.0, 20.0)  # tuned so a tiny model learns within a few demo epochs yet stays far from 1.0 mAP
EVENTS_PER_CLIP = (1, 2, 3)
EVENTS_PER_CLIP_P = (0.4, 0.4, 0.2)


def clip_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *index])


@dataclass(frozen=True)
class PlacedEvent:
    label: str
    onset_s: float
    duration_s: float
    snr_db: float


@dataclass(frozen=True)
class Clip:
    wave: np.ndarray  # float32 mono at 16 kHz, peak below 1
    events: tuple[PlacedEvent, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({event.label for event in self.events}))

    @property
    def duration_s(self) -> float:
        return len(self.wave) / SAMPLE_RATE


def _background(rng: np.random.Generator, length: int) -> np.ndarray:
    white, pink, brown = rng.dirichlet([1.0, 1.0, 1.0])
    return coloured_noise(rng, length, white, pink, brown)


def _margin_s(label: str, version: CorpusVersion) -> float:
    return version.relation_margin_s if class_by_label(label).kind == TEMPORAL else 0.0


def _mix(rng: np.random.Generator, length: int, events: list[tuple[str, np.ndarray]], version: CorpusVersion) -> Clip:
    """Events at random onsets and SNRs over unit-RMS noise, then scaled to a random peak level.

    A temporal event of a version with an edge margin starts and ends at least that far from the clip's
    edges, centred in the clip up to a jitter when the version says so (why: :mod:`.relations`); with
    no margin the draw is version 1's, byte for byte.
    """
    mix = _background(rng, length)
    placed = []
    for label, event in events:
        event = event[:length]
        margin = int(round(_margin_s(label, version) * SAMPLE_RATE))
        latest = max(margin, length - len(event) - margin)
        if margin and version.relation_jitter_s is not None:  # centred: first sound early, last late
            middle = (length - len(event)) // 2
            reach = min(int(version.relation_jitter_s * SAMPLE_RATE), middle - margin, latest - middle)
            onset = middle + int(rng.integers(-max(reach, 0), max(reach, 0) + 1))
        else:
            onset = int(rng.integers(margin, latest + 1))
        snr_db = float(rng.uniform(*SNR_DB))
        add_at(mix, event * 10.0 ** (snr_db / 20.0) / active_rms(event), onset)
        placed.append(PlacedEvent(label, onset / SAMPLE_RATE, len(event) / SAMPLE_RATE, snr_db))
    mix *= rng.uniform(0.3, 0.9) / np.max(np.abs(mix))
    return Clip(mix.astype(np.float32), tuple(placed))


def render_multilabel_clip(rng: np.random.Generator, version: CorpusVersion) -> Clip:
    """1-3 distinct classes of ``version``, overlapping freely, in a clip of ``version.clip_seconds``.

    The drawn duration is stretched to fit the longest event and its margins, so an event is never cut
    (a cut accelerating pattern could look like something else).
    """
    labels = tuple(c.label for c in version.vocabulary)
    shortest_s, longest_clip_s = version.clip_seconds
    count = int(rng.choice(EVENTS_PER_CLIP, p=EVENTS_PER_CLIP_P))
    chosen = [labels[i] for i in rng.choice(len(labels), size=count, replace=False)]
    events = [(label, synthesise_event(label, rng)) for label in chosen]
    needed_s = max(len(wave) / SAMPLE_RATE + 2 * _margin_s(label, version) for label, wave in events)
    seconds = min(max(rng.uniform(shortest_s, longest_clip_s), needed_s + 0.1), longest_clip_s)
    return _mix(rng, n_samples(seconds), events, version)


def render_single_class_clip(
    event_rng: np.random.Generator,
    mix_rng: np.random.Generator,
    label: str,
    version: CorpusVersion,
    seconds: float = ESC_CLIP_S,
) -> Clip:
    """One event of ``label`` in a fixed-length clip.

    The event comes from ``event_rng`` and everything else from ``mix_rng``, so the takes of one
    ESC-50-style source share their event and differ in placement, level and background.
    """
    event = synthesise_event(label, event_rng)
    return _mix(mix_rng, n_samples(seconds), [(label, event)], version)
