"""Training: the loop, checkpoints, schedules, run logs and the fold-aware runner."""

from .checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint, save_checkpoint
from .loop import TrainJob, train
from .runner import run_dir_for, run_training, splits_for

__all__ = ["TrainJob", "load_checkpoint", "model_from_checkpoint", "resolve_checkpoint", "run_dir_for",
           "run_training", "save_checkpoint", "splits_for", "train"]
