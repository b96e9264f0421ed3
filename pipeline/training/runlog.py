"""What a run writes besides checkpoints: train.log, metrics.csv (one row per epoch), summary.json and a PNG curve."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..metrics import METRIC_KEYS

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "task_loss",
    "kd_loss",
    "lr",
    *(f"val_{key}" for key in METRIC_KEYS),
    "seconds",
    "clips_per_s",
]
FLOAT_FORMAT = "%.6g"
LOG_FILE = "train.log"


def append_metrics(path: Path, row: dict) -> None:
    """One epoch's row; the header comes with the first. Keys outside METRIC_COLUMNS are ignored."""
    frame = pd.DataFrame([{column: row.get(column) for column in METRIC_COLUMNS}], columns=METRIC_COLUMNS)
    frame.to_csv(path, mode="a", header=not path.exists(), index=False, float_format=FLOAT_FORMAT)


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """On resume, drop rows of epochs after the checkpoint (they were lost with the kill)."""
    if not path.exists():
        return
    frame = read_metrics_frame(path)
    frame[frame["epoch"] <= last_epoch].to_csv(path, index=False, float_format=FLOAT_FORMAT)


def read_metrics_frame(path: Path) -> pd.DataFrame:
    """metrics.csv as a table, one row per epoch (empty cells are NaN)."""
    return pd.read_csv(path)


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv as one dict per epoch (numbers, NaN for empty cells)."""
    return read_metrics_frame(path).to_dict("records")


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")


def run_title(run_dir: str | Path, config, dataset: str) -> str:
    """Two lines naming a run in its figures: the run and its model, then how it was taught (KD mode,
    the teacher's store or checkpoint, lambda, tau); a KD student's figures must not read like its teacher's."""
    parts = Path(run_dir).parts
    run = "/".join(parts[len(parts) - parts[::-1].index(dataset) :]) if dataset in parts else Path(run_dir).name
    first = f"{run or Path(run_dir).name}: {config.model} on {dataset}"
    if config.kd == "none":
        return f"{first}\nsupervised (no KD)"
    source = config.teacher if config.kd == "online" else config.logits
    teacher = Path(source).parent.parent.name if Path(source).suffix == ".pt" else Path(source).name
    return (
        f"{first}\nKD {config.kd} ({config.kd_loss}) from {teacher or '?'}, "
        f"\u03bb={config.kd_lambda:g}, \u03c4={config.tau:g}"
    )


def epoch_axis(ax, epochs) -> None:
    """Whole epochs only, with half an epoch of room each side: a one-epoch run's axis would otherwise
    read 0.945 ... 1.050."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    first, last = int(min(epochs)), int(max(epochs))
    ax.set_xlim(first - 0.5, last + 0.5)
    if last - first < 15:  # MaxNLocator falls back to fractions on a span this short
        ax.xaxis.set_major_locator(FixedLocator(list(range(first, last + 1))))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def plot_curves(metrics_csv: Path, out_png: Path, title: str = "") -> None:
    """Loss and validation scores per epoch; Agg backend so it works on headless cluster nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = read_metrics_frame(metrics_csv)
    if frame.empty:
        return
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "task_loss", "kd_loss"):
        if (frame[key].fillna(0) != 0).any():
            ax_loss.plot(frame["epoch"], frame[key], marker="o", label=key)
    ax_loss.set_ylabel("loss"), ax_loss.legend()
    scores = []
    for key, marker, label in (("val_map", "o", "val mAP"), ("val_accuracy", "s", "val accuracy")):
        if frame[key].notna().any():
            ax_map.plot(frame["epoch"], frame[key], marker=marker, label=label)
            scores += frame[key].dropna().tolist()
    if scores:
        ax_map.set_ylim(*score_axis(scores))
    ax_map.set_ylabel("validation score"), ax_map.legend()
    for ax in (ax_loss, ax_map):
        epoch_axis(ax, frame["epoch"].tolist())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def score_axis(values: list[float]) -> tuple[float, float]:
    """y-limits that show how scores move: the data's range plus a margin, kept inside [0, 1].
    A fixed 0-1 axis flattens a run that climbs from 0.10 to 0.15 into a straight line."""
    low, high = min(values), max(values)
    margin = max(0.1 * (high - low), 0.01)
    return max(-margin, low - margin), min(1.0 + margin, high + margin)  # a score of 1.0 stays off the frame


def square_limits(values: list[float]) -> tuple[float, float]:
    """One range for both axes of a teacher-vs-student scatter (the diagonal must stay the diagonal):
    the data's range with a margin, inside [0, 1]. Fixed 0-1 axes squeezed AP values of 0-0.4 into a corner."""
    low, high = min(values), max(values)
    margin = max(0.05 * (high - low), 0.01)
    return max(-margin, low - margin), min(1.0 + margin, high + margin)  # a class at AP 1.0 stays off the frame


class _LogLines:
    """A stream that writes to ``stream`` as before and, line by line, to ``log``. A progress bar's
    carriage-return redraws are collapsed to the line's last state, so a bar leaves one line in the
    log however often it redrew on the terminal."""

    def __init__(self, stream, log):
        self.stream, self.log, self.pending = stream, log, ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._copy(line.rsplit("\r", 1)[-1] + "\n")
        self.pending = self.pending.rsplit("\r", 1)[-1]
        return len(text)

    def _copy(self, line: str) -> None:
        """The log is a copy: when it cannot be written (a full disk), the run goes on without it, says so
        once, and the next write that matters (a checkpoint) reports the full disk by name."""
        if self.log is None:
            return
        try:
            self.log.write(line)
        except OSError as error:
            name, self.log = getattr(self.log, "name", LOG_FILE), None
            self.stream.write(f"warning: {name}: no longer written ({error.strerror or error}); the run goes on\n")

    def flush(self) -> None:
        self.stream.flush()
        if self.log is not None:
            try:
                self.log.flush()
            except OSError:
                self.log = None

    def __getattr__(self, name):  # isatty, fileno, encoding ...: the terminal's (bars choose their style by it)
        return getattr(self.stream, name)


_logging_to: Path | None = None  # the train.log this process already copies its output into


def _already_written(path: Path) -> bool:
    """True when this process's stdout already goes into ``path`` (a grid's run: pipeline.experiments.parallel_runs
    points the child's stdout at the same train.log)."""
    try:
        return path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), path.stat())
    except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor
        return False


@contextlib.contextmanager
def run_log(run_dir: str | Path) -> Iterator[None]:
    """Copy what this process prints (stdout and stderr) into ``<run_dir>/train.log`` while the block
    runs, appending (a resumed run continues its log). Nothing is copied twice: not when the output
    already goes there, nor in a nested run's block, nor on a DDP rank other than 0."""
    global _logging_to
    path = Path(run_dir) / LOG_FILE
    if _logging_to is not None or int(os.environ.get("RANK", "0")) != 0 or _already_written(path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    out, err = sys.stdout, sys.stderr
    log = open(path, "a", buffering=1)
    sys.stdout, sys.stderr, _logging_to = _LogLines(out, log), _LogLines(err, log), path
    try:
        yield
    except BaseException:
        import traceback

        try:
            traceback.print_exc(file=log)  # the error is in the log too, not only on the terminal
        except OSError:
            pass  # a full disk: the error itself still reaches the terminal
        raise
    finally:
        sys.stdout, sys.stderr, _logging_to = out, err, None
        try:
            log.close()
        except OSError:
            pass  # what could not be flushed is lost from the copy only; the run's own error stands
