"""Checkpoints are plain dicts (nanoGPT style), saved atomically and loaded with weights_only=True.

Keys: model, optimizer, scheduler, epoch, best_metric, config, metrics, torch_rng, and, with weight
averaging, wa_state / wa_count. A run keeps ``last.pt`` (resume), ``best.pt`` (best validation),
``averaged.pt`` (weight averaging) and ``final.pt``: the model a later stage uses as its teacher.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import Config, config_from_dict
from ..manifests import sha256_file as file_sha256  # noqa: F401  (re-exported for provenance)


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write to a temp file and rename, so a kill mid-save never leaves a broken checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory means its final.pt (the model stage one and evaluation use)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "final.pt", path / "final.pt"):
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"{path}: no checkpoints/final.pt (did the run finish?)")
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return path


def model_from_checkpoint(path: str | os.PathLike):
    """(model in eval mode, Config, checkpoint dict) for a run directory or .pt file."""
    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    ckpt["path"] = str(ckpt_path)
    return model_from_state(ckpt), config_from_dict(ckpt["config"]), ckpt


def model_from_state(ckpt: dict):
    """The model of an already loaded checkpoint dict, in eval mode."""
    from ..models import create_model

    model = create_model(ckpt["model_name"], **ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def training_config(ckpt: dict) -> Config:
    return config_from_dict(ckpt["config"])
