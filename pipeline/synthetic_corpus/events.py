"""Sound-event synthesis: one recipe per class, each a pure function of a random generator.

The "local" recipes here are told apart by their time-frequency shape within a few hundred
milliseconds. The "temporal" recipes (:mod:`.patterns` for corpus version 1, :mod:`.relations` for
version 2) reuse shared material and differ only in how it is arranged over seconds. :func:`synthesise_event` is the single entry point; the class
list itself (labels, mids, kinds) lives in :mod:`.classes`.

Every parameter is drawn from a wide range (pitch over several octaves, durations over a factor of
five, timbre tilt, envelope) so that a class is a family of sounds rather than a template, and
neighbouring classes overlap: a fast click buzz is spectrally a harmonic stack, a warble with a
small depth is nearly a steady tone, a percussive hit is a short noise burst.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..audio import SAMPLE_RATE
from . import patterns, relations
from .signals import (
    band_noise,
    exp_decay,
    fade,
    harmonic_tone,
    impulse_train,
    log_uniform,
    n_samples,
    swept_noise,
    timbre_weights,
)

Recipe = Callable[[np.random.Generator], np.ndarray]


def _edges(rng: np.random.Generator, wave: np.ndarray, longest_s: float = 0.05) -> np.ndarray:
    return fade(wave, rng.uniform(0.005, longest_s), rng.uniform(0.005, longest_s))


def steady_tone(rng: np.random.Generator) -> np.ndarray:
    return patterns.steady_material(rng, rng.uniform(0.4, 2.5))


def harmonic_stack(rng: np.random.Generator) -> np.ndarray:
    length = n_samples(rng.uniform(0.4, 2.5))
    weights = timbre_weights(rng, int(rng.integers(4, 11)), 0.3, 1.5)
    return _edges(rng, harmonic_tone(rng, log_uniform(rng, 90.0, 600.0), length, weights))


def hollow_buzz(rng: np.random.Generator) -> np.ndarray:
    """Odd partials only (a square-ish, clarinet-like buzz): a harmonic stack with every other rung missing."""
    length = n_samples(rng.uniform(0.4, 2.5))
    weights = timbre_weights(rng, int(rng.integers(9, 20)), 0.5, 1.5, odd_only=True)
    return _edges(rng, harmonic_tone(rng, log_uniform(rng, 80.0, 400.0), length, weights))


def _chirp(rng: np.random.Generator, upward: bool) -> np.ndarray:
    length = n_samples(rng.uniform(0.2, 1.5))
    low = log_uniform(rng, 200.0, 1500.0)
    high = low * log_uniform(rng, 1.5, 5.0)
    weights = timbre_weights(rng, int(rng.integers(1, 4)), 1.0, 3.0)
    track = np.exp(np.linspace(np.log(low), np.log(high), length))
    if not upward:
        track = track[::-1]
    return _edges(rng, harmonic_tone(rng, track, length, weights), 0.03)


def up_chirp(rng: np.random.Generator) -> np.ndarray:
    return _chirp(rng, upward=True)


def down_chirp(rng: np.random.Generator) -> np.ndarray:
    return _chirp(rng, upward=False)


def fm_warble(rng: np.random.Generator) -> np.ndarray:
    length = n_samples(rng.uniform(0.5, 2.5))
    carrier = log_uniform(rng, 300.0, 3000.0)
    rate, depth = rng.uniform(3.0, 12.0), rng.uniform(0.03, 0.15)
    t = np.arange(length) / SAMPLE_RATE
    track = carrier * (1.0 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    weights = timbre_weights(rng, int(rng.integers(1, 4)), 1.0, 3.0)
    return _edges(rng, harmonic_tone(rng, track, length, weights))


def tremolo_tone(rng: np.random.Generator) -> np.ndarray:
    """Fast amplitude flutter (10-25 Hz), faster than any beep pattern so the two stay separable."""
    length = n_samples(rng.uniform(0.5, 2.5))
    rate, depth = rng.uniform(10.0, 25.0), rng.uniform(0.6, 1.0)
    t = np.arange(length) / SAMPLE_RATE
    gain = 1.0 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    weights = timbre_weights(rng, int(rng.integers(1, 4)), 1.0, 3.0)
    return _edges(rng, gain * harmonic_tone(rng, log_uniform(rng, 200.0, 3000.0), length, weights))


def noise_burst(rng: np.random.Generator) -> np.ndarray:
    length = n_samples(rng.uniform(0.15, 2.0))
    centre = log_uniform(rng, 250.0, 5000.0)
    half_octaves = 0.5 * rng.uniform(0.3, 1.5)
    wave = band_noise(rng, length, centre * 2**-half_octaves, min(centre * 2**half_octaves, 7800.0))
    return fade(wave, rng.uniform(0.005, 0.1), rng.uniform(0.005, 0.3))


def whoosh(rng: np.random.Generator) -> np.ndarray:
    """A noise band gliding up or down: the noisy cousin of a chirp."""
    length = n_samples(rng.uniform(0.4, 2.0))
    start = log_uniform(rng, 300.0, 1500.0)
    end = start * log_uniform(rng, 2.0, 5.0)
    if rng.random() < 0.5:
        start, end = end, start
    wave = swept_noise(rng, length, start, end, rng.uniform(0.5, 1.2))
    return fade(wave, rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3))


def click_buzz(rng: np.random.Generator) -> np.ndarray:
    """A regular click train at 25-120 Hz: heard as a ratchet or buzz, seen as a comb of partials."""
    length = n_samples(rng.uniform(0.3, 1.5))
    period = SAMPLE_RATE / rng.uniform(25.0, 120.0)
    onsets = np.round(np.arange(0.0, length, period)).astype(np.int64)
    wave = impulse_train(rng, length, onsets, log_uniform(rng, 1500.0, 7000.0))
    return _edges(rng, wave, 0.03)


def crackle(rng: np.random.Generator) -> np.ndarray:
    """Irregular (Poisson) clicks with scattered levels: the unordered counterpart of a click buzz."""
    length = n_samples(rng.uniform(0.5, 2.5))
    count = max(3, rng.poisson(rng.uniform(15.0, 60.0) * length / SAMPLE_RATE))
    onsets = np.sort(rng.integers(0, length, size=count))
    wave = impulse_train(
        rng, length, onsets, log_uniform(rng, 1000.0, 7000.0), click_s=rng.uniform(0.002, 0.006), levels=(0.2, 1.0)
    )
    return _edges(rng, wave, 0.03)


def percussive_hit(rng: np.random.Generator) -> np.ndarray:
    """A drum-like hit: a decaying noise band plus an optional decaying low partial."""
    length = n_samples(rng.uniform(0.15, 0.8))
    noise = band_noise(rng, length, log_uniform(rng, 100.0, 1000.0), log_uniform(rng, 2000.0, 7500.0))
    noise *= exp_decay(length, rng.uniform(0.02, 0.2))
    body_weight = rng.uniform(0.0, 1.5)
    body = harmonic_tone(rng, log_uniform(rng, 60.0, 400.0), length, np.array([1.0, 0.3]))
    body *= exp_decay(length, rng.uniform(0.05, 0.3))
    return fade(noise + body_weight * body, 0.001, 0.01)


RECIPES: dict[str, Recipe] = {
    "Steady_tone": steady_tone,
    "Harmonic_stack": harmonic_stack,
    "Hollow_buzz": hollow_buzz,
    "Up_chirp": up_chirp,
    "Down_chirp": down_chirp,
    "FM_warble": fm_warble,
    "Tremolo_tone": tremolo_tone,
    "Noise_burst": noise_burst,
    "Whoosh": whoosh,
    "Click_buzz": click_buzz,
    "Crackle": crackle,
    "Percussive_hit": percussive_hit,
    **patterns.RECIPES,
    **relations.RECIPES,
}


def synthesise_event(label: str, rng: np.random.Generator) -> np.ndarray:
    """One event of class ``label`` as a float64 waveform at 16 kHz, peak-normalised to 1."""
    try:
        recipe = RECIPES[label]
    except KeyError:
        raise KeyError(f"no synthesis recipe for class {label!r}; known: {sorted(RECIPES)}") from None
    wave = recipe(rng)
    peak = np.max(np.abs(wave))
    return wave / peak if peak > 0 else wave
