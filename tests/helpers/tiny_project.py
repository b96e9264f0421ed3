"""The tiny project the end-to-end tests run on: tiny model configs and recipes for the four-class tiny
dataset (``pipeline.testing.write_tiny_dataset``, the generator the benchmarks share), and a run killed
at the worst moment (``run_killed_after_epoch``)."""

from __future__ import annotations

from pathlib import Path

from pipeline.recipe import load_config
from tests.helpers import REPO_ROOT

# the recipe keys every tiny run shares: a tiny CNN on 32x64 features, a schedule that never decays
TINY_KEYS = {
    "model": "efficientnet_tiny",
    "n_mels": 32,
    "target_length": 64,
    "batch_size": 8,
    "lr": 1e-3,
    "lr_decay_start": 100,
    "eval_batch_size": 16,
    "threads": 1,
    "norm_mean": -6.0,
    "norm_std": 4.0,
}


def tiny_config(**overrides):
    base = {**TINY_KEYS, "epochs": 2, **overrides}
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

    base = {**TINY_KEYS, "epochs": 1, "cnn_model": "efficientnet_tiny", "ast_model": "ast_micro", **overrides}
    return Recipe(base={k: str(v) for k, v in base.items()}, teacher={"epochs": str(teacher_epochs)})
