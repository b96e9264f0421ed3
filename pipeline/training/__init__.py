"""Training: the loop, resume checks, schedules, run logs and the fold-aware runner (checkpoint files:
:mod:`pipeline.checkpoints`)."""

from .job import TrainJob
from .loop import train
from .runner import FoldSplit, fold_runs, fold_splits, is_finished, run_training, splits_for

__all__ = ["FoldSplit", "TrainJob", "fold_runs", "fold_splits", "is_finished", "run_training", "splits_for", "train"]
