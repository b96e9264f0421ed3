"""Signal primitives for the synthetic corpus: tones, noises, envelopes, mixing.

Everything is vectorised numpy on float64 at 16 kHz and takes an explicit ``numpy.random.Generator``,
so a clip is a pure function of its seed. Nothing here knows about classes or file layouts.
"""

from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE

# Partials fade out over the last _PARTIAL_ROLLOFF_HZ below this ceiling rather than alias past
# Nyquist; a hard cut would put a click into every chirp whose partial crosses it.
_PARTIAL_CEILING_HZ = 0.45 * SAMPLE_RATE
_PARTIAL_ROLLOFF_HZ = 800.0


def n_samples(seconds: float) -> int:
    return max(1, int(round(seconds * SAMPLE_RATE)))


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Pitches and rates are perceived on a log scale, so they are drawn on one."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def harmonic_tone(rng: np.random.Generator, f0: float | np.ndarray, length: int, weights: np.ndarray) -> np.ndarray:
    """Sum of partials k*f0 (k = 1..len(weights)) with random start phases.

    ``f0`` is a constant or a per-sample instantaneous frequency, so chirps and warbles come from
    the same code as steady tones; each partial fades out smoothly as it nears the ceiling.
    """
    f0_track = np.broadcast_to(np.asarray(f0, dtype=np.float64), (length,))
    phase = 2.0 * np.pi * np.cumsum(f0_track) / SAMPLE_RATE
    start_phases = rng.uniform(0.0, 2.0 * np.pi, size=len(weights))
    wave = np.zeros(length)
    for k, (weight, start) in enumerate(zip(weights, start_phases), start=1):
        if weight == 0.0:
            continue
        audible = np.clip((_PARTIAL_CEILING_HZ - k * f0_track) / _PARTIAL_ROLLOFF_HZ, 0.0, 1.0)
        wave += weight * np.sin(k * phase + start) * audible
    return wave


def timbre_weights(
    rng: np.random.Generator, n_partials: int, tilt_low: float, tilt_high: float, odd_only: bool = False
) -> np.ndarray:
    """Partial amplitudes ~ k**-tilt with per-partial jitter, so one class covers many timbres."""
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    weights = k ** -rng.uniform(tilt_low, tilt_high) * rng.uniform(0.5, 1.0, size=n_partials)
    weights[0] = 1.0
    if odd_only:
        weights[1::2] = 0.0
    return weights


def fade(wave: np.ndarray, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine onset and offset ramps (no clicks at segment edges)."""
    out = wave.copy()
    for ramp_s, edge in ((attack_s, "start"), (release_s, "end")):
        ramp_len = min(n_samples(ramp_s), len(out) // 2)
        if ramp_len < 2:
            continue
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp_len))
        if edge == "start":
            out[:ramp_len] *= ramp
        else:
            out[-ramp_len:] *= ramp[::-1]
    return out


def exp_decay(length: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(length) / (tau_s * SAMPLE_RATE))


def _fast_length(length: int) -> int:
    """Noise is shaped on an FFT-friendly length and cut back: a prime-length FFT is ~50x slower."""
    from scipy.fft import next_fast_len

    return next_fast_len(length, real=True)


def band_noise(rng: np.random.Generator, length: int, low_hz: float, high_hz: float) -> np.ndarray:
    """White noise restricted to [low_hz, high_hz] with soft (Gaussian-in-log-f) band edges."""
    fft_length = _fast_length(length)
    spectrum = np.fft.rfft(rng.standard_normal(fft_length))
    freqs = np.fft.rfftfreq(fft_length, 1.0 / SAMPLE_RATE)
    log_f = np.log(np.maximum(freqs, 1.0))
    centre = 0.5 * (np.log(low_hz) + np.log(high_hz))
    half_width = 0.5 * (np.log(high_hz) - np.log(low_hz))
    # flat inside the band, Gaussian roll-off of ~1/6 octave outside
    excess = np.maximum(np.abs(log_f - centre) - half_width, 0.0)
    spectrum *= np.exp(-0.5 * (excess / 0.12) ** 2)
    wave = np.fft.irfft(spectrum, n=fft_length)[:length]
    return wave / (np.std(wave) + 1e-12)


def swept_noise(
    rng: np.random.Generator, length: int, start_hz: float, end_hz: float, width_octaves: float
) -> np.ndarray:
    """Noise whose passband centre glides from start_hz to end_hz (a 'whoosh').

    Built frame by frame in the STFT domain: a time-varying filter that a single FFT cannot express.
    """
    from scipy.signal import istft, stft

    frame = 512
    _, _, spec = stft(rng.standard_normal(length), fs=SAMPLE_RATE, nperseg=frame, noverlap=frame * 3 // 4)
    freqs = np.fft.rfftfreq(frame, 1.0 / SAMPLE_RATE)
    centres = np.exp(np.linspace(np.log(start_hz), np.log(end_hz), spec.shape[1]))
    octave_dist = np.log2(np.maximum(freqs[:, None], 1.0) / centres[None, :])
    spec *= np.exp(-0.5 * (octave_dist / (0.5 * width_octaves)) ** 2)
    _, wave = istft(spec, fs=SAMPLE_RATE, nperseg=frame, noverlap=frame * 3 // 4)
    wave = wave[:length]
    if len(wave) < length:
        wave = np.pad(wave, (0, length - len(wave)))
    return wave / (np.std(wave) + 1e-12)


def impulse_train(
    rng: np.random.Generator,
    length: int,
    onsets: np.ndarray,
    brightness_hz: float,
    click_s: float = 0.003,
    levels: tuple[float, float] = (0.6, 1.0),
) -> np.ndarray:
    """Short decaying noise clicks at the given sample onsets, low-passed near brightness_hz."""
    click_len = n_samples(click_s)
    click = band_noise(rng, click_len * 4, 150.0, brightness_hz)[:click_len] * exp_decay(click_len, click_s / 4)
    train = np.zeros(length)
    onsets = onsets[(onsets >= 0) & (onsets < length)]
    amplitudes = rng.uniform(levels[0], levels[1], size=len(onsets))
    train[onsets] = amplitudes
    return np.convolve(train, click)[:length]


def coloured_noise(rng: np.random.Generator, length: int, white: float, pink: float, brown: float) -> np.ndarray:
    """A mix of white (flat), pink (1/f) and brown (1/f^2) power spectra, unit RMS."""
    fft_length = _fast_length(length)
    spectrum = np.fft.rfft(rng.standard_normal(fft_length))
    freqs = np.maximum(np.fft.rfftfreq(fft_length, 1.0 / SAMPLE_RATE), 20.0)
    # each colour normalised to unit power before mixing, so the weights mean what they say
    shapes = [np.ones_like(freqs), freqs**-0.5, freqs**-1.0]
    gain = sum(w * s / np.sqrt(np.mean(s**2)) for w, s in zip((white, pink, brown), shapes))
    wave = np.fft.irfft(spectrum * gain, n=fft_length)[:length]
    return wave / (np.std(wave) + 1e-12)


def active_rms(wave: np.ndarray) -> float:
    """RMS over the sounding samples only, so a sparse beep pattern is levelled by its beeps."""
    peak = np.max(np.abs(wave))
    sounding = np.abs(wave) > 1e-3 * peak if peak > 0 else np.ones(len(wave), dtype=bool)
    return float(np.sqrt(np.mean(wave[sounding] ** 2)))


def add_at(dest: np.ndarray, src: np.ndarray, start: int) -> None:
    """dest[start:start+len(src)] += src, clipped to dest's bounds."""
    end = min(len(dest), start + len(src))
    if end > start:
        dest[start:end] += src[: end - start]
