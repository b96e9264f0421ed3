"""Training: the loop, resume checks, schedules, run logs and the fold-aware runner (checkpoint files:
:mod:`pipeline.checkpoints`)."""

from .loop import TrainJob, train
from .runner import fold_runs, is_finished, run_training, splits_for

__all__ = ["TrainJob", "fold_runs", "is_finished", "run_training", "splits_for", "train"]
