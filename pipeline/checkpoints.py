"""Checkpoints are plain dicts (nanoGPT style), saved atomically and loaded with weights_only=True.

Below both stages: training writes them, stage one and stage two's online teacher read them, and
a received file is checked against the model registry before anything is built from it.

Keys: model, optimizer, scheduler, epoch, best_metric, config, metrics, torch_rng, and, with weight
averaging, wa_state / wa_count. A run keeps ``last.pt`` (resume), ``best.pt`` (best validation),
``averaged.pt`` (weight averaging) and ``final.pt``: the model a later stage uses as its teacher.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch

from .config import config_from_dict
from .config_check import front_end_from
from .manifests import sha256_file as file_sha256  # noqa: F401  (re-exported for provenance)

# less free space than this after a failed save means the disk filled up
FULL_DISK_BYTES = 1 << 20


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write to a temp file and rename, so a kill mid-save never leaves a broken checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
    except (RuntimeError, OSError) as error:
        # torch reports a full disk as a RuntimeError from its zip writer; say what happened, and
        # drop the half-written file (the previous checkpoint is untouched, so RESUME=1 works)
        stats = os.statvfs(tmp.parent)
        full = stats.f_bavail * stats.f_frsize < FULL_DISK_BYTES
        tmp.unlink(missing_ok=True)
        if full and not isinstance(error, OSError):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
        raise
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint of ours: loaded weights-only, and its model name and config checked against the
    registry before anything uses them (a received file never names a path, module or callable)."""
    from .models.checkpoint_import import CheckpointImportError, load_weights_only
    from .models.registry import validate_model_config

    ckpt = load_weights_only(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointImportError(f"{path}: not a training checkpoint (a dict with a 'model' state dict)")
    if "model_name" in ckpt or "model_config" in ckpt:
        try:
            validate_model_config(ckpt.get("model_name"), ckpt.get("model_config", {}), source=str(path))
        except ValueError as error:
            raise CheckpointImportError(str(error)) from None
    if "front_end" in ckpt:
        front_end_from(ckpt["front_end"], str(path))
    if "vocabulary" in ckpt:
        checkpoint_mids(ckpt, str(path))
    return ckpt


def checkpoint_mids(ckpt: dict, source: str) -> list[str]:
    """The checkpoint's class ids (its output columns, in order), checked: distinct strings, one per
    output of the model, with a name each. A vocabulary of 20 copies of one path is no vocabulary."""
    from .models.checkpoint_import import CheckpointImportError

    vocabulary = ckpt.get("vocabulary")
    mids = vocabulary.get("mids") if isinstance(vocabulary, dict) else None
    names = vocabulary.get("names", mids) if isinstance(vocabulary, dict) else None
    if not isinstance(mids, list) or not mids or not all(isinstance(m, str) and m for m in mids):
        raise CheckpointImportError(f"{source}: vocabulary.mids must be a non-empty list of class ids (strings)")
    if not isinstance(names, list) or len(names) != len(mids):
        raise CheckpointImportError(f"{source}: vocabulary.names must list one name per mid ({len(mids)})")
    repeated = sorted({m for m in mids if mids.count(m) > 1}) if len(set(mids)) != len(mids) else []
    if repeated:
        raise CheckpointImportError(
            f"{source}: vocabulary lists {repeated[0]!r} {mids.count(repeated[0])} times"
            + (f" (and {len(repeated) - 1} other repeated ids)" if len(repeated) > 1 else "")
            + "; a class id names one output column"
        )
    classes = (ckpt.get("model_config") or {}).get("num_classes")
    if isinstance(classes, int) and classes != len(mids):
        raise CheckpointImportError(f"{source}: vocabulary has {len(mids)} classes but the model outputs {classes}")
    return list(mids)


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
    from .models import create_model
    from .models.registry import validate_model_config

    name, config = validate_model_config(
        ckpt["model_name"], ckpt["model_config"], source=ckpt.get("path", "checkpoint")
    )
    model = create_model(name, **config)
    model.load_state_dict(ckpt["model"])
    return model.eval()
