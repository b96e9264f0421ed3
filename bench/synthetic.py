"""Generated inputs for the benchmark: noise-and-tone audio, a manifest over it, a random-init
teacher saved the way stage one reads teachers, and AudioSet-like logits written to real stores.

Nothing here is faked at the code path being timed: the audio is real WAV files, the teacher a real
checkpoint, the stores are written with the store's own writer. Only the content is synthetic,
because speed and size do not depend on whether a model was trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.audio import write_wav
from pipeline.config import Config, FrontEndConfig, config_to_dict
from pipeline.features import front_end_dict
from pipeline.manifests import Clip, Label, write_manifest

SIMULATED_SHA = "0" * 64  # stands where a real teacher or manifest hash would be


def synth_wave(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Noise plus one to three tones at a plausible level (about -12 dBFS)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.05 * rng.standard_normal(len(t))
    for _ in range(int(rng.integers(1, 4))):
        wave += 0.15 * np.sin(2 * np.pi * rng.uniform(100, min(6000, sample_rate / 2.5)) * t)
    return wave.astype(np.float32)


def write_clips(folder: Path, count: int, seconds: float, sample_rate: int = 16000, seed: int = 0) -> list[Path]:
    """16-bit PCM WAVs named clip00000.wav ...; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}.wav"
        write_wav(path, synth_wave(seconds, sample_rate, rng), sample_rate)
        paths.append(path)
    return paths


def vocabulary(num_classes: int) -> tuple[list[str], list[str]]:
    return [f"/bench/c{i:04d}" for i in range(num_classes)], [f"class_{i}" for i in range(num_classes)]


def write_bench_manifest(
    root: Path, name: str, wavs: list[Path], num_classes: int, seconds: float, sample_rate: int, seed: int = 0
) -> Path:
    """A training-split manifest over `wavs` (which must lie under root) with one to three labels each."""
    rng = np.random.default_rng(seed)
    mids, names = vocabulary(num_classes)
    labels = [Label(i, mid, label) for i, (mid, label) in enumerate(zip(mids, names))]
    clips = []
    for wav in wavs:
        picked = rng.choice(num_classes, size=int(rng.integers(1, 4)), replace=False)
        clips.append(
            Clip(
                wav.stem,
                str(wav.relative_to(root)),
                tuple(mids[i] for i in sorted(picked)),
                "train",
                None,
                seconds,
                sample_rate,
                1,
            )
        )
    return write_manifest(root / "data_manifests" / name, name, root, "fsd50k", labels, clips)


def save_random_teacher(
    run_dir: Path, model_name: str, num_classes: int, n_mels: int, target_length: int, seed: int = 0
) -> Path:
    """A random-init model saved as runs/<run>/checkpoints/final.pt with every key stage one reads."""
    import torch

    from pipeline.checkpoints import save_checkpoint
    from pipeline.models import create_model

    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=num_classes, n_mels=n_mels, target_length=target_length)
    config = Config(model=model_name, n_mels=n_mels, target_length=target_length)
    mids, names = vocabulary(num_classes)
    state = {
        "model": model.state_dict(),
        "model_name": model.model_name,
        "model_config": model.model_config,
        "config": config_to_dict(config),
        "front_end": dataclasses.asdict(FrontEndConfig(n_mels=n_mels, target_length=target_length)),
        "vocabulary": {"mids": mids, "names": names},
        "activation": "sigmoid",
        "dataset": "bench",
        "epoch": 0,
        "kind": "random-init",
        "metrics": {},
    }
    path = run_dir / "checkpoints" / "final.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, path)
    return path


def simulated_logits(rows: int, num_classes: int, seed: int) -> np.ndarray:
    """float32 [rows, C] shaped like a multi-label AudioSet model's pre-sigmoid output.

    Most classes sit far below zero (probabilities around 0.1-1 %), with a per-class prior, and each
    clip has one to four active classes with logits around +1.5 (probabilities 50-95 %).
    """
    rng = np.random.default_rng(seed)
    prior = rng.normal(0.0, 1.0, size=num_classes)
    logits = rng.normal(-6.0, 1.2, size=(rows, num_classes)) + prior
    active = rng.integers(1, 5, size=rows)
    for row in range(rows):
        classes = rng.choice(num_classes, size=active[row], replace=False)
        logits[row, classes] = rng.normal(1.5, 1.5, size=active[row])
    return logits.astype(np.float32)


def simulated_attrs(num_classes: int) -> dict:
    """Provenance a store requires, marked as simulated."""
    return {
        "teacher": {"model": "simulated", "checkpoint_sha256": SIMULATED_SHA},
        "manifest": {"name": "bench", "sha256": {"clips.csv": SIMULATED_SHA, "labels.csv": SIMULATED_SHA}},
        "front_end": front_end_dict(FrontEndConfig()),
    }


def write_simulated_store(
    path: Path,
    clip_ids: list[str],
    num_classes: int,
    chunk_logits: Callable[[int, int], np.ndarray],
    views: int = 0,
    chunk_views: Callable[[int, int], tuple[np.ndarray, dict]] | None = None,
    chunk_clips: int | None = None,
    dtype: str = "float16",
) -> Path:
    """A complete store written through create_store / write_chunk / mark_chunk_done / finalize_store.

    chunk_logits(start, stop) gives rows start:stop; with views, chunk_views(start, stop) gives
    (view_logits [n, K, C], views_to_arrays(...)).
    """
    from pipeline.store import chunk_plan, create_store, finalize_store, mark_chunk_done, write_chunk

    mids, names = vocabulary(num_classes)
    n = len(clip_ids)
    create_store(
        path,
        clip_ids=clip_ids,
        splits=["train"] * n,
        folds=[0] * n,
        vocabulary_mids=mids,
        vocabulary_names=names,
        activation="sigmoid",
        attrs=simulated_attrs(num_classes),
        views=views,
        view_seed=0,
        dtype=dtype,
        chunk_clips=chunk_clips,
        overwrite=True,
    )
    for index, start, stop in chunk_plan(path):
        view_logits, view_arrays = chunk_views(start, stop) if views else (None, None)
        checksum = write_chunk(
            path,
            index,
            chunk_logits(start, stop),
            np.ones(stop - start, dtype=bool),
            view_logits=view_logits,
            view_arrays=view_arrays,
        )
        mark_chunk_done(path, index, checksum)
    finalize_store(path, {"simulated": True})
    return path
