"""Generated audio datasets on disk: WAV files and the manifest over them, as `make manifests` writes it.

Two kinds, for two needs:
- the tiny dataset (:func:`write_tiny_dataset`): four classes a model tells apart by ear (a low tone,
  a high tone, noise, clicks), so a 2-epoch run on 24 clips learns something and a test can check it;
- generated sets of any size (:func:`write_generated_clips` + :func:`write_generated_manifest`):
  noise plus tones at a plausible level under random labels, for benchmarks, where speed and size
  matter and what a model could learn does not.
Every clip is a real 16-bit WAV file, and every manifest is written by the manifest writer, so the code
that reads them is the code that reads a real corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.audio import audio_fingerprint, write_wav
from pipeline.manifests import Clip, Label, update_dataset_info, write_manifest

TINY_CLASSES = [("/t/low", "Low_tone"), ("/t/high", "High_tone"), ("/t/noise", "Noise_burst"), ("/t/click", "Clicks")]
# what `make norm-stats` would record (a run refuses a dataset without statistics): AudioSet's published
# numbers, which the tiny dataset's tests were written against
TINY_NORM_STATS = {"norm_mean": -4.2677, "norm_std": 4.5690, "method": "fixture"}


def tiny_class_signal(mid: str, seconds: float, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One tiny-dataset class's sound (float64): a 200-400 Hz or 2-3 kHz tone, noise, or 5-15 clicks a second."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    if mid == "/t/low":
        return 0.3 * np.sin(2 * np.pi * rng.uniform(200, 400) * t)
    if mid == "/t/high":
        return 0.3 * np.sin(2 * np.pi * rng.uniform(2000, 3000) * t)
    if mid == "/t/noise":
        return 0.2 * rng.standard_normal(len(t))
    wave = np.zeros(len(t))
    wave[:: int(sample_rate / rng.uniform(5, 15))] = 0.8
    return wave


def write_tiny_dataset(
    root: Path,
    name: str = "tiny",
    n_train: int = 24,
    n_eval: int = 8,
    seed: int = 0,
    fold_based: bool = False,
    unlabelled: int = 0,
) -> Path:
    """The tiny dataset under root/ (audio/<name>/, data_manifests/<name>/); returns the manifest folder.

    Multi-label like FSD50K (every third clip has a second class), or with `fold_based` single-label in
    four folds like ESC-50; `unlabelled` extra training clips carry no labels. 0.6-1.2 s clips at 16 kHz.
    """
    rng = np.random.default_rng(seed)
    audio_dir = root / "audio" / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n_train + n_eval + unlabelled):
        mids = [TINY_CLASSES[i % 4][0]] + ([TINY_CLASSES[(i + 1) % 4][0]] if (i % 3 == 0 and not fold_based) else [])
        seconds = float(rng.uniform(0.6, 1.2))
        wave = sum(tiny_class_signal(m, seconds, rng) for m in mids) + 0.01 * rng.standard_normal(int(16000 * seconds))
        path = audio_dir / f"c{i:03d}.wav"
        write_wav(path, wave.astype(np.float32))
        if i >= n_train + n_eval:
            mids = []
        split = "" if fold_based else ("train" if i < n_train or not mids else "eval")
        fold = (i % 4) + 1 if fold_based else None
        clips.append(
            Clip(
                f"c{i:03d}",
                f"audio/{name}/c{i:03d}.wav",
                tuple(mids),
                split,
                fold,
                seconds,
                16000,
                1,
                audio_fingerprint(path),
            )
        )
    labels = [Label(i, mid, label) for i, (mid, label) in enumerate(TINY_CLASSES)]
    out = root / "data_manifests" / name
    write_manifest(out, name, root, "esc50" if fold_based else "fsd50k", labels, clips)
    update_dataset_info(out, norm_stats=TINY_NORM_STATS)
    return out


def noise_and_tones(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32 noise plus one to three tones at a plausible level (about -12 dBFS)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.05 * rng.standard_normal(len(t))
    for _ in range(int(rng.integers(1, 4))):
        wave += 0.15 * np.sin(2 * np.pi * rng.uniform(100, min(6000, sample_rate / 2.5)) * t)
    return wave.astype(np.float32)


def write_generated_clips(
    folder: Path, count: int, seconds: float, sample_rate: int = 16000, seed: int = 0
) -> list[Path]:
    """`count` 16-bit PCM WAVs of :func:`noise_and_tones`, named clip00000.wav ...; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}.wav"
        write_wav(path, noise_and_tones(seconds, sample_rate, rng), sample_rate)
        paths.append(path)
    return paths


def generated_vocabulary(num_classes: int) -> tuple[list[str], list[str]]:
    """(mids, names) of a made-up vocabulary: /bench/c0000 ... and class_0 ..."""
    return [f"/bench/c{i:04d}" for i in range(num_classes)], [f"class_{i}" for i in range(num_classes)]


def write_generated_manifest(
    root: Path,
    name: str,
    wavs: list[Path],
    num_classes: int,
    seconds: float,
    sample_rate: int = 16000,
    seed: int = 0,
    total_ids: int = 0,
) -> Path:
    """A training-split manifest over `wavs` (which must lie under root) with one to three random labels
    each; returns its folder.

    With `total_ids` larger than len(wavs), the manifest grows to that many ids, the extra ones reusing
    the real files under other names (sim0000000 ...) with one label each: a manifest of a big corpus's
    size without its audio, for costs that depend on the id count (a mixup partner pool, a task's size).
    """
    rng = np.random.default_rng(seed)
    mids, names = generated_vocabulary(num_classes)
    labels = [Label(i, mid, label) for i, (mid, label) in enumerate(zip(mids, names))]
    clips = []
    for wav in wavs:
        picked = rng.choice(num_classes, size=int(rng.integers(1, 4)), replace=False)
        labelled = tuple(mids[i] for i in sorted(picked))
        clips.append(Clip(wav.stem, str(wav.relative_to(root)), labelled, "train", None, seconds, sample_rate, 1))
    clips += [
        Clip(f"sim{i:07d}", clips[i % len(wavs)].path, (mids[i % num_classes],), "train", None, seconds, sample_rate, 1)
        for i in range(max(0, total_ids - len(wavs)))
    ]
    return write_manifest(root / "data_manifests" / name, name, root, "fsd50k", labels, clips)
