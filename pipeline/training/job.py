"""What one training run trains on: the record the runner (and stage two through it) hands the loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, FrontEndConfig
from ..manifests import Clip, Manifest
from .kd_source import KDSource


@dataclass
class TrainJob:
    """What to train on. kd: stage two's teacher (cached logits or an online model, and the KD loss
    settings), None for supervised training."""

    config: Config
    manifest: Manifest
    train_clips: list[Clip]
    val_clips: list[Clip]
    eval_clips: list[Clip]
    front_end: FrontEndConfig
    run_dir: Path
    kd: KDSource | None = None
    extra_summary: dict | None = None
