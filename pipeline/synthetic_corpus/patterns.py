"""Temporal-structure classes: shared local material, told apart only by its arrangement.

Every beep pattern is built from the same :func:`blip` distribution, every ordered pair draws both of
its segments before deciding their order, and a fading tone is a swelling tone played backwards. So
for the mirrored pairs (Low_then_high / High_then_low, Long_short / Short_long, Accelerating /
Decelerating, Swelling / Fading) the same generator state yields the *same samples in a different
order*: a model can only separate them by looking across hundreds of milliseconds to seconds,
which is where a transformer's global attention should beat a CNN's local receptive field.
"""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE
from .signals import band_noise, fade, harmonic_tone, log_uniform, n_samples, timbre_weights

# All beep classes share this blip length range, and every inter-onset interval stays >= 0.1 s, so
# blips never overlap and blip length carries no class information.
BLIP_SECONDS = (0.025, 0.045)
MIN_IOI_S = 0.1


def steady_material(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A constant-pitch tone with 1-3 weak partials: the Steady_tone class and the swell/fade material."""
    length = n_samples(seconds)
    weights = timbre_weights(rng, int(rng.integers(1, 4)), 1.5, 3.0)
    wave = harmonic_tone(rng, log_uniform(rng, 150.0, 4000.0), length, weights)
    return fade(wave, rng.uniform(0.005, 0.05), rng.uniform(0.005, 0.05))


def blip(rng: np.random.Generator) -> np.ndarray:
    """One short beep: a pure tone, a small harmonic complex, or a noise tick."""
    seconds = rng.uniform(*BLIP_SECONDS)
    length = n_samples(seconds)
    kind = int(rng.integers(3))
    if kind == 0:
        wave = harmonic_tone(rng, log_uniform(rng, 500.0, 3500.0), length, np.array([1.0]))
    elif kind == 1:
        weights = timbre_weights(rng, int(rng.integers(3, 7)), 0.5, 1.5)
        wave = harmonic_tone(rng, log_uniform(rng, 300.0, 1200.0), length, weights)
    else:
        centre = log_uniform(rng, 800.0, 5000.0)
        wave = band_noise(rng, length, centre / 1.5, min(centre * 1.5, 7800.0))
    return fade(wave, 0.3 * seconds, 0.3 * seconds)


def _jitter(rng: np.random.Generator, iois_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slightly uneven timing (+-4 %) and level (+-1.5 dB), as a human or machine would produce."""
    timing = np.maximum(iois_s * rng.uniform(0.96, 1.04, size=len(iois_s)), MIN_IOI_S)
    gains = 10.0 ** (rng.uniform(-1.5, 1.5, size=len(iois_s) + 1) / 20.0)
    return timing, gains


def _place(segments: list[np.ndarray], onsets: list[int]) -> np.ndarray:
    out = np.zeros(max(onset + len(seg) for seg, onset in zip(segments, onsets)))
    for seg, onset in zip(segments, onsets):
        out[onset : onset + len(seg)] += seg
    return out


def _beeps(material: np.ndarray, iois_s: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Repeat one blip at the given inter-onset intervals; intervals go to whole samples first so a
    reversed interval list gives exactly the same total length."""
    onsets = np.concatenate([[0], np.cumsum(np.round(np.asarray(iois_s) * SAMPLE_RATE).astype(np.int64))])
    return _place([material * g for g in gains], [int(o) for o in onsets])


def slow_beeps(rng: np.random.Generator) -> np.ndarray:
    material = blip(rng)
    iois, gains = _jitter(rng, np.full(int(rng.integers(2, 7)), rng.uniform(0.33, 0.7)))
    return _beeps(material, iois, gains)


def fast_beeps(rng: np.random.Generator) -> np.ndarray:
    material = blip(rng)
    iois, gains = _jitter(rng, np.full(int(rng.integers(4, 16)), rng.uniform(0.12, 0.24)))
    return _beeps(material, iois, gains)


def galloping_beeps(rng: np.random.Generator) -> np.ndarray:
    """Groups of three (da-da-DUM... as short, short, long gaps) at a fast-beep rate."""
    material = blip(rng)
    short = rng.uniform(MIN_IOI_S, 0.16)
    group = [short, short, short * rng.uniform(2.2, 3.5)]
    iois, gains = _jitter(rng, np.array(group * int(rng.integers(2, 6)))[:-1])
    return _beeps(material, iois, gains)


def _tempo_ramp(rng: np.random.Generator, accelerating: bool) -> np.ndarray:
    material = blip(rng)
    slow, fast = rng.uniform(0.3, 0.5), rng.uniform(MIN_IOI_S, 0.13)
    iois, gains = _jitter(rng, np.geomspace(slow, fast, int(rng.integers(5, 12))))
    if not accelerating:
        iois, gains = iois[::-1], gains[::-1]
    return _beeps(material, iois, gains)


def accelerating_beeps(rng: np.random.Generator) -> np.ndarray:
    return _tempo_ramp(rng, accelerating=True)


def decelerating_beeps(rng: np.random.Generator) -> np.ndarray:
    return _tempo_ramp(rng, accelerating=False)


def echoing_beeps(rng: np.random.Generator) -> np.ndarray:
    """A blip and its fading repeats at a constant rate: a fast-beep pattern whose level decays."""
    material = blip(rng)
    copies = int(rng.integers(3, 7))
    iois, jitter_gains = _jitter(rng, np.full(copies - 1, rng.uniform(MIN_IOI_S, 0.25)))
    gains = jitter_gains * rng.uniform(0.45, 0.75) ** np.arange(copies)
    return _beeps(material, iois, gains)


def _ordered_pairs(rng: np.random.Generator, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """first, short gap, second; the pair repeated 1-3 times with longer rests in between."""
    gap, rest = n_samples(rng.uniform(0.03, 0.2)), n_samples(rng.uniform(0.35, 0.8))
    segments, onsets, t = [], [], 0
    for _ in range(int(rng.integers(1, 4))):
        segments += [first, second]
        onsets += [t, t + len(first) + gap]
        t += len(first) + gap + len(second) + rest
    return _place(segments, onsets)


def _pitch_pair(rng: np.random.Generator, low_first: bool) -> np.ndarray:
    base, ratio = log_uniform(rng, 200.0, 1200.0), log_uniform(rng, 1.3, 2.5)
    weights = timbre_weights(rng, int(rng.integers(1, 5)), 0.8, 2.5)
    low, high = (
        fade(harmonic_tone(rng, f, n_samples(rng.uniform(0.12, 0.4)), weights), 0.015, 0.015)
        for f in (base, base * ratio)
    )
    return _ordered_pairs(rng, low, high) if low_first else _ordered_pairs(rng, high, low)


def low_then_high(rng: np.random.Generator) -> np.ndarray:
    return _pitch_pair(rng, low_first=True)


def high_then_low(rng: np.random.Generator) -> np.ndarray:
    return _pitch_pair(rng, low_first=False)


def long_and_short(
    rng: np.random.Generator, long_s: tuple[float, float], short_s: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A long and a short segment of one material (a tone or a noise band); corpus version 2's
    relations reuse it with other lengths."""
    lengths = (n_samples(rng.uniform(*long_s)), n_samples(rng.uniform(*short_s)))
    if rng.random() < 0.5:
        pitch, weights = log_uniform(rng, 200.0, 2000.0), timbre_weights(rng, int(rng.integers(1, 5)), 0.8, 2.5)
        long_seg, short_seg = (harmonic_tone(rng, pitch, n, weights) for n in lengths)
    else:
        centre = log_uniform(rng, 400.0, 4000.0)
        long_seg, short_seg = (band_noise(rng, n, centre / 1.6, min(centre * 1.6, 7800.0)) for n in lengths)
    return fade(long_seg, 0.01, 0.01), fade(short_seg, 0.01, 0.01)


def _duration_pair(rng: np.random.Generator, long_first: bool) -> np.ndarray:
    """A long and a short segment of one material, in a fixed order."""
    long_seg, short_seg = long_and_short(rng, (0.3, 0.6), (0.06, 0.15))
    if long_first:
        return _ordered_pairs(rng, long_seg, short_seg)
    return _ordered_pairs(rng, short_seg, long_seg)


def long_short(rng: np.random.Generator) -> np.ndarray:
    return _duration_pair(rng, long_first=True)


def short_long(rng: np.random.Generator) -> np.ndarray:
    return _duration_pair(rng, long_first=False)


def swelling_tone(rng: np.random.Generator) -> np.ndarray:
    """A steady tone whose level climbs 15-35 dB over 1.5-4 s; locally it is just a steady tone."""
    wave = steady_material(rng, rng.uniform(1.5, 4.0))
    rise_db = np.linspace(-rng.uniform(15.0, 35.0), 0.0, len(wave))
    return wave * 10.0 ** (rise_db / 20.0)


def fading_tone(rng: np.random.Generator) -> np.ndarray:
    # a reversed steady tone is still a steady tone, so reversing the swell changes only the envelope
    return swelling_tone(rng)[::-1].copy()


RECIPES = {
    "Slow_beeps": slow_beeps,
    "Fast_beeps": fast_beeps,
    "Galloping_beeps": galloping_beeps,
    "Accelerating_beeps": accelerating_beeps,
    "Decelerating_beeps": decelerating_beeps,
    "Echoing_beeps": echoing_beeps,
    "Low_then_high": low_then_high,
    "High_then_low": high_then_low,
    "Long_short": long_short,
    "Short_long": short_long,
    "Swelling_tone": swelling_tone,
    "Fading_tone": fading_tone,
}
