"""Corpus version 2's temporal classes: a relation between sounds too far apart for a CNN to see together.

Why version 1's temporal classes did not need attention. The CPU demo's CNN (``efficientnet_tiny``:
five stride-2 stages, 3x3 kernels) has a theoretical receptive field of 67 frames, 0.67 s at a 10-ms
hop, and a smaller effective one. Every version-1 temporal class can be decided inside such a
window: a beep rate is visible between two neighbouring beeps, an accelerating train shows a long gap
followed by a shorter one, a "low then high" pair sits 0.03-0.2 s apart, a swell shows its slope in
any half second. On top of that, mean (or attention) pooling over time turns the local features into
a bag, and a bag of "beep, gap 0.3 s, beep" windows already tells a slow train from a fast one. So
the CNN had every temporal class within reach and, being the more data-efficient learner, won
them (0.35 vs 0.21 eval AP at an equal 18-epoch budget).

Version 2 defines each temporal class by the *order* of two or three short sounds separated by
1.5-2.4 s (adjacent steps of a staircase by 0.8-1.1 s), more than twice that receptive field. The
two members of a mirrored pair are built from the same generator state, so they hold exactly the
same sounds, only in the other order. A model that looks at windows of 0.67 s and pools them into a
bag sees the same bag for both members: it can tell that "a low and a high tone" occurred, never
which came first. A transformer's attention spans the whole clip and its position embeddings say
where each patch sits, so the order is within its reach. :mod:`.clips` keeps every sound of these
classes at least ``RELATION_EDGE_MARGIN_S`` from both ends of the clip, so that "close to the start"
(which zero padding would make visible to a CNN) gives no hint of the order either, and centres the
relation in the clip (up to a jitter): its first sound lies in the first half, its last in the second.
So the order is also "which sound sits in which half", a question about absolute position that a
transformer's position embeddings answer at a single patch, while a shift-equivariant CNN that pools
over time has no notion of where in the clip a feature was.

Each sound is recognisable on its own (a low tone of 150-300 Hz, a high one of 1.2-2.5 kHz, a noise
band, a long or a short sound), so detecting that a pair occurred is easy for both families, and
telling the pair from its mirror is the whole difficulty. A first design with pitches relative to
each other (any base, a 1.4-2.5 ratio) and 0.15-0.35-s sounds stayed near chance for both families
(temporal-group AP 0.21 CNN, 0.17 AST, 1 seed): presence of the pair was already too hard to learn.

Version 3 (tried, not the default: docs/corpus.md) adds two pairs along two dimensions version 2
leaves out, so that the temporal group has as many classes as the local one: level (the same tone
twice, one copy 8-14 dB softer) and timbre (one pitch, once rich in partials and once a pure sine).

These recipes return the whole relation as one waveform, silence included; its length is what the
mixer places.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .patterns import long_and_short
from .signals import band_noise, fade, harmonic_tone, log_uniform, n_samples, timbre_weights

# 2x the CNN's theoretical receptive field (0.67 s) and more; the upper end keeps the longest
# relation (3.5 s) plus both edge margins inside a 5-s ESC-50 clip.
GAP_S = (1.5, 2.4)
STEP_GAP_S = (0.8, 1.1)  # a staircase has three sounds, so its steps are closer
RELATION_EDGE_MARGIN_S = 0.7
# Each sound of a pair is recognisable on its own (a low tone, a noise band, a long sound): what a
# sound *is* never needs the other one, only the order does.
LOW_HZ, MIDDLE_HZ, HIGH_HZ = (150.0, 300.0), (500.0, 800.0), (1200.0, 2500.0)
SOUND_S = (0.25, 0.45)


def _tone(rng: np.random.Generator, pitch: float, seconds: float, weights: np.ndarray) -> np.ndarray:
    return fade(harmonic_tone(rng, pitch, n_samples(seconds), weights), 0.015, 0.015)


def _in_order(first: np.ndarray, second: np.ndarray, gap: int) -> np.ndarray:
    out = np.zeros(len(first) + gap + len(second))
    out[: len(first)] = first
    out[len(first) + gap :] = second
    return out


def _pair(rng: np.random.Generator, make_pair, a_first: bool) -> np.ndarray:
    """Draw both sounds and the gap first, then decide the order: same state, same samples."""
    a, b = make_pair(rng)
    gap = n_samples(rng.uniform(*GAP_S))
    return _in_order(a, b, gap) if a_first else _in_order(b, a, gap)


def _low_and_high(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    low, high = log_uniform(rng, *LOW_HZ), log_uniform(rng, *HIGH_HZ)
    weights = timbre_weights(rng, int(rng.integers(1, 5)), 0.8, 2.5)
    seconds = rng.uniform(*SOUND_S)
    return _tone(rng, low, seconds, weights), _tone(rng, high, seconds, weights)


def _long_and_short(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return long_and_short(rng, (0.6, 0.9), (0.1, 0.18))


def _noise_and_tone(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centre = log_uniform(rng, 500.0, 5000.0)
    noise = fade(band_noise(rng, n_samples(rng.uniform(*SOUND_S)), centre / 1.5, min(centre * 1.5, 7800.0)), 0.01, 0.01)
    weights = timbre_weights(rng, int(rng.integers(1, 4)), 1.0, 2.5)
    return noise, _tone(rng, log_uniform(rng, 250.0, 2000.0), rng.uniform(*SOUND_S), weights)


def _staircase(rng: np.random.Generator, rising: bool) -> np.ndarray:
    """A low, a middle and a high tone; the gaps are drawn before the direction."""
    weights = timbre_weights(rng, int(rng.integers(1, 5)), 0.8, 2.5)
    seconds = rng.uniform(0.2, 0.35)
    tones = [_tone(rng, log_uniform(rng, *band), seconds, weights) for band in (LOW_HZ, MIDDLE_HZ, HIGH_HZ)]
    gaps = [n_samples(rng.uniform(*STEP_GAP_S)) for _ in range(2)]
    if not rising:
        tones = tones[::-1]
    first_two = _in_order(tones[0], tones[1], gaps[0])
    return _in_order(first_two, tones[2], gaps[1])


def _loud_and_soft(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One tone twice; the copy is 8-14 dB down (audible over the background at the corpus's SNRs)."""
    weights = timbre_weights(rng, int(rng.integers(1, 5)), 0.8, 2.5)
    tone = _tone(rng, log_uniform(rng, 250.0, 2000.0), rng.uniform(*SOUND_S), weights)
    return tone, tone * 10.0 ** (-rng.uniform(8.0, 14.0) / 20.0)


def _bright_and_dark(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One pitch and length: 8-14 partials of nearly equal weight, and the bare fundamental."""
    pitch, seconds = log_uniform(rng, 200.0, 500.0), rng.uniform(*SOUND_S)
    bright = _tone(rng, pitch, seconds, timbre_weights(rng, int(rng.integers(8, 15)), 0.0, 0.5))
    dark = _tone(rng, pitch, seconds, np.array([1.0]))
    return bright, dark


RECIPES = {
    "Low_before_high": partial(_pair, make_pair=_low_and_high, a_first=True),
    "High_before_low": partial(_pair, make_pair=_low_and_high, a_first=False),
    "Long_before_short": partial(_pair, make_pair=_long_and_short, a_first=True),
    "Short_before_long": partial(_pair, make_pair=_long_and_short, a_first=False),
    "Noise_before_tone": partial(_pair, make_pair=_noise_and_tone, a_first=True),
    "Tone_before_noise": partial(_pair, make_pair=_noise_and_tone, a_first=False),
    "Rising_steps": partial(_staircase, rising=True),
    "Falling_steps": partial(_staircase, rising=False),
    "Loud_before_soft": partial(_pair, make_pair=_loud_and_soft, a_first=True),
    "Soft_before_loud": partial(_pair, make_pair=_loud_and_soft, a_first=False),
    "Bright_before_dark": partial(_pair, make_pair=_bright_and_dark, a_first=True),
    "Dark_before_bright": partial(_pair, make_pair=_bright_and_dark, a_first=False),
}
