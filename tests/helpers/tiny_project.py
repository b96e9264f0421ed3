"""The tiny project the end-to-end tests run on: four synthetic sound classes written as real WAV
files with a manifest (``make_tiny_dataset``), tiny model configs and recipes, and a run killed at
the worst moment (``run_killed_after_epoch``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.audio import audio_fingerprint, write_wav
from pipeline.manifests import Clip, Label, update_dataset_info, write_manifest
from pipeline.recipe import load_config
from tests.helpers import REPO_ROOT

TINY_CLASSES = [("/t/low", "Low_tone"), ("/t/high", "High_tone"), ("/t/noise", "Noise_burst"), ("/t/click", "Clicks")]


def synth(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    if kind == "/t/low":
        return 0.3 * np.sin(2 * np.pi * rng.uniform(200, 400) * t)
    if kind == "/t/high":
        return 0.3 * np.sin(2 * np.pi * rng.uniform(2000, 3000) * t)
    if kind == "/t/noise":
        return 0.2 * rng.standard_normal(len(t))
    wave = np.zeros(len(t))
    wave[:: int(16000 / rng.uniform(5, 15))] = 0.8
    return wave


def make_tiny_dataset(
    root: Path,
    name: str = "tiny",
    n_train: int = 24,
    n_eval: int = 8,
    seed: int = 0,
    fold_based: bool = False,
    unlabelled: int = 0,
) -> Path:
    """Write WAVs and a manifest under root/; returns the manifest directory."""
    rng = np.random.default_rng(seed)
    audio_dir = root / "audio" / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    total = n_train + n_eval + unlabelled
    for i in range(total):
        mids = [TINY_CLASSES[i % 4][0]] + ([TINY_CLASSES[(i + 1) % 4][0]] if (i % 3 == 0 and not fold_based) else [])
        seconds = float(rng.uniform(0.6, 1.2))
        wave = sum(synth(m, seconds, rng) for m in mids) + 0.01 * rng.standard_normal(int(16000 * seconds))
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
    # as after `make norm-stats` (a run refuses a dataset with none); AudioSet's numbers, which runs
    # without statistics used to fall back to, so every test trains exactly as before
    update_dataset_info(out, norm_stats={"norm_mean": -4.2677, "norm_std": 4.5690, "method": "fixture"})
    return out


def tiny_config(**overrides):
    base = {
        "model": "efficientnet_tiny",
        "n_mels": 32,
        "target_length": 64,
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "lr_decay_start": 100,
        "eval_batch_size": 16,
        "threads": 1,
        "norm_mean": -6.0,
        "norm_std": 4.0,
    }
    base.update(overrides)
    return load_config(None, {k: str(v) for k, v in base.items()})


def run_killed_after_epoch(code: str, epoch: int, cwd: Path | None = None):
    """Run `code` (Python, inside this repo) in a subprocess that SIGKILLs itself right after the
    checkpoint of `epoch` is written: a crash at the worst moment of a real run."""
    import subprocess
    import sys

    script = (
        f"import os, sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import torch; "
        "torch.set_num_threads(1)\n"
        "import pipeline.training.loop as loop\n"
        "real = loop.save_checkpoint\n"
        "def killing_save(state, path):\n"
        "    real(state, path)\n"
        f"    if str(path).endswith('last.pt') and state['epoch'] == {epoch:d}: os.kill(os.getpid(), 9)\n"
        "loop.save_checkpoint = killing_save\n"
    )
    return subprocess.run([sys.executable, "-c", script + code], capture_output=True, text=True, cwd=cwd)


def tiny_recipe(teacher_epochs: int = 2, **overrides):
    """A Recipe for the tiny dataset: 1-epoch students, `teacher_epochs` for teachers."""
    from pipeline.recipe import Recipe

    base = {
        "model": "efficientnet_tiny",
        "n_mels": 32,
        "target_length": 64,
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "lr_decay_start": 100,
        "eval_batch_size": 16,
        "threads": 1,
        "norm_mean": -6.0,
        "norm_std": 4.0,
        "cnn_model": "efficientnet_tiny",
        "ast_model": "ast_micro",
    }
    base.update(overrides)
    return Recipe(base={k: str(v) for k, v in base.items()}, teacher={"epochs": str(teacher_epochs)})
