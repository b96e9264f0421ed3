"""TensorBoard event files per run, under ``<run>/tensorboard/``: what lhotse/icefall/Lightning users look at.

Per optimiser step: the loss, its task and KD parts and the learning rate (tags ``step/...``); per epoch:
the epoch's mean losses, lr, throughput and the validation scores (``epoch/...``, ``val/...``), all
against the global step, so the two kinds line up on one x-axis (``epoch/epoch`` says where each
epoch ended). View them with ``tensorboard --logdir runs/<dataset>``.

Optional: ``tensorboard`` is the ``[tensorboard]`` extra. Without it a run trains as before and says
once, per process, that it writes no event files.

The per-step values stay on the device until the epoch ends and are written then, so logging every
step costs no host synchronisation per step (the loop avoids one on purpose).
"""

from __future__ import annotations

from pathlib import Path

import torch

EVENTS_DIR = "tensorboard"
STEP_TAGS = ("step/loss", "step/task_loss", "step/kd_loss")
EPOCH_TAGS = {
    "train_loss": "epoch/train_loss",
    "task_loss": "epoch/task_loss",
    "kd_loss": "epoch/kd_loss",
    "lr": "epoch/lr",
    "clips_per_s": "epoch/clips_per_s",
    "val_map": "val/map",
    "val_mauc": "val/mauc",
    "val_dprime": "val/dprime",
    "val_accuracy": "val/accuracy",
}
MISSING_NOTE = (
    "note: tensorboard is not installed, so runs write no TensorBoard event files "
    "(pip install 'cmkd-pipeline[tensorboard]' adds it)"
)
_noted_missing = False  # the note is printed once per process, not once per run of a grid


class NoTracker:
    """What a run without event files gets (tensorboard missing, or a DDP rank other than 0)."""

    def step(self, step: int, lr: float, total: torch.Tensor, parts: dict) -> None:
        pass

    def epoch(self, step: int, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


class RunTracker(NoTracker):
    def __init__(self, writer, kd: bool):
        self.writer, self.kd = writer, kd
        self.pending: list[tuple[int, float, torch.Tensor]] = []

    def step(self, step: int, lr: float, total: torch.Tensor, parts: dict) -> None:
        self.pending.append((step, lr, torch.stack([total.detach(), parts["task"], parts["kd"]]).float()))

    def epoch(self, step: int, row: dict) -> None:
        """Write the epoch's buffered steps and its metrics.csv row, then flush: a killed run keeps
        every finished epoch's events."""
        if self.pending:
            values = torch.stack([losses for _, _, losses in self.pending]).cpu().tolist()
            for (at, lr, _), losses in zip(self.pending, values, strict=True):
                for tag, value in zip(STEP_TAGS if self.kd else STEP_TAGS[:2], losses, strict=False):
                    self.writer.add_scalar(tag, value, at)
                self.writer.add_scalar("step/lr", lr, at)
            self.pending = []
        self.writer.add_scalar("epoch/epoch", row["epoch"], step)
        for key, tag in EPOCH_TAGS.items():
            if row.get(key) is not None and (self.kd or key != "kd_loss"):
                self.writer.add_scalar(tag, float(row[key]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tracker(run_dir: Path, enabled: bool, kd: bool, resumed_step: int = 0) -> NoTracker:
    """The run's tracker. A resumed run drops the events a killed run wrote after its checkpoint
    (``purge_step``), as metrics.csv drops their rows."""
    global _noted_missing
    if not enabled:
        return NoTracker()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        if not _noted_missing:
            print(MISSING_NOTE)
            _noted_missing = True
        return NoTracker()
    writer = SummaryWriter(str(Path(run_dir) / EVENTS_DIR), purge_step=resumed_step + 1 if resumed_step else None)
    return RunTracker(writer, kd)
