"""Checkpoints are plain dicts (nanoGPT style), saved atomically and loaded with weights_only=True.

Keys: model, optimizer, scheduler, epoch, best_metric, config, metrics, torch_rng, and, with weight
averaging, wa_state / wa_count. A run keeps ``last.pt`` (resume), ``best.pt`` (best validation),
``averaged.pt`` (weight averaging) and ``final.pt``: the model a later stage uses as its teacher.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch

from ..config import Config, config_from_dict
from ..manifests import sha256_file as file_sha256  # noqa: F401  (re-exported for provenance)


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
    from ..models.checkpoint_import import CheckpointImportError, load_weights_only
    from ..models.registry import validate_model_config

    ckpt = load_weights_only(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointImportError(f"{path}: not a training checkpoint (a dict with a 'model' state dict)")
    if "model_name" in ckpt or "model_config" in ckpt:
        try:
            validate_model_config(ckpt.get("model_name"), ckpt.get("model_config", {}), source=str(path))
        except ValueError as error:
            raise CheckpointImportError(str(error)) from None
    return ckpt


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

    from ..models.registry import validate_model_config

    name, config = validate_model_config(ckpt["model_name"], ckpt["model_config"], source=ckpt.get("path", "checkpoint"))
    model = create_model(name, **config)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def training_config(ckpt: dict) -> Config:
    return config_from_dict(ckpt["config"])


# recipe keys RESUME lets change, and why that cannot alter the epochs already trained
RESUMABLE_CHANGES = {
    "epochs": "may grow: the lr schedule and the clip order depend on the epoch, not on the total",
    "num_workers": "data-loading processes only",
    "features_on": "where the same features are computed (float rounding only)",
    "threads": "torch intra-op threads only",
    "eval_batch_size": "evaluation batching only",
}


class ResumeMismatch(ValueError):
    """RESUME with a recipe (or front end) other than the one the run's checkpoint was trained with."""


def recipe_differences(saved: dict, current: dict, defaults: dict | None = None) -> list[str]:
    """'key: run has X, now Y' for every key whose value differs; a key the saved side lacks (a
    checkpoint older than the key) counts as its default."""
    defaults = defaults or {}
    lines = []
    for key in sorted(set(saved) | set(current)):
        old = saved.get(key, defaults.get(key))
        new = current.get(key, defaults.get(key))
        if isinstance(old, tuple):
            old = list(old)
        if isinstance(new, tuple):
            new = list(new)
        if old != new:
            lines.append(f"{key}: run has {old!r}, now {new!r}")
    return lines


def check_resume(ckpt: dict, config: Config, front_end, path: str | os.PathLike) -> None:
    """Refuse to resume ``path`` under a recipe other than its own, listing every difference. Only
    the keys in :data:`RESUMABLE_CHANGES` may change (``epochs`` only upwards)."""
    import dataclasses

    from ..config import config_to_dict

    saved = dict(ckpt.get("config") or {})
    current = config_to_dict(config)
    defaults = config_to_dict(Config())
    problems = [line for line in recipe_differences(saved, current, defaults)
                if line.split(":", 1)[0] not in RESUMABLE_CHANGES]
    trained = int(ckpt.get("epoch", 0))
    if config.epochs < trained:
        problems.append(f"epochs: run has already trained {trained}, now {config.epochs} (epochs may only grow)")
    front = vars(front_end) if not dataclasses.is_dataclass(front_end) else dataclasses.asdict(front_end)
    if ckpt.get("front_end"):
        problems += [f"front end {line}" for line in recipe_differences(ckpt["front_end"], front)]
    if problems:
        allowed = ", ".join(RESUMABLE_CHANGES)
        raise ResumeMismatch(f"{path}: RESUME refused, the recipe differs from the one this run was trained with: "
                             + "; ".join(problems) + f". Resume with the run's own recipe ({Path(path).parent.parent}"
                             f"/config.yaml), or start a new RUN=; only {allowed} may change (epochs only upwards)")
