"""RESUME=1: refuse to continue a run under a recipe (or front end) other than its own."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..config import Config, FrontEndConfig, config_to_dict

# recipe keys RESUME lets change, and why that cannot alter the epochs already trained
RESUMABLE_CHANGES = {
    "epochs": "may grow: the lr schedule and the clip order depend on the epoch, not on the total",
    "num_workers": "data-loading processes only",
    "features_on": "where the same features are computed (float rounding only)",
    "threads": "torch intra-op threads only",
    "eval_batch_size": "evaluation batching only",
    "eval_cache_mb": "evaluation input caching only",
}


def in_current_meaning(saved: dict) -> dict:
    """A saved recipe with its keys in today's meaning. Until issue 23 ``lr_decay_start`` named the
    first decayed epoch (those recipes have no ``lr_schedule``): N then is N - 1 now, so a run trained
    with the same schedule compares equal and one whose schedule the change shifted does not."""
    if "lr_schedule" in saved:
        return saved
    start = saved.get("lr_decay_start", Config().lr_decay_start)
    if isinstance(start, int) and start >= 1:
        return {**saved, "lr_schedule": "upstream", "lr_decay_start": start - 1}
    return {**saved, "lr_schedule": "legacy"}


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


def check_resume(ckpt: dict, config: Config, front_end: FrontEndConfig, path: str | os.PathLike) -> None:
    """Refuse to resume ``path`` under a recipe other than its own, listing every difference. Only
    the keys in :data:`RESUMABLE_CHANGES` may change (``epochs`` only upwards)."""
    saved = in_current_meaning(dict(ckpt.get("config") or {}))
    current = config_to_dict(config)
    defaults = config_to_dict(Config())
    problems = [
        line for line in recipe_differences(saved, current, defaults) if line.split(":", 1)[0] not in RESUMABLE_CHANGES
    ]
    trained = int(ckpt.get("epoch", 0))
    if config.epochs < trained:
        problems.append(f"epochs: run has already trained {trained}, now {config.epochs} (epochs may only grow)")
    front = vars(front_end) if not dataclasses.is_dataclass(front_end) else dataclasses.asdict(front_end)
    if ckpt.get("front_end"):
        problems += [f"front end {line}" for line in recipe_differences(ckpt["front_end"], front)]
    if problems and "lr_schedule" not in (ckpt.get("config") or {}):
        problems.append(
            "(the run was saved when lr_decay_start named the first decayed epoch; its value is shown in "
            "today's meaning, upstream's lrscheduler_start: the epochs at the full lr)"
        )
    if problems:
        allowed = ", ".join(RESUMABLE_CHANGES)
        raise ResumeMismatch(
            f"{path}: RESUME refused, the recipe differs from the one this run was trained with: "
            + "; ".join(problems)
            + f". Resume with the run's own recipe ({Path(path).parent.parent}"
            f"/config.yaml), or start a new RUN=; only {allowed} may change (epochs only upwards)"
        )
