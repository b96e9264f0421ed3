"""What a run writes besides checkpoints: metrics.csv (one row per epoch), summary.json and a PNG curve."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..metrics import METRIC_KEYS

METRIC_COLUMNS = ["epoch", "train_loss", "task_loss", "kd_loss", "lr", *(f"val_{key}" for key in METRIC_KEYS),
                  "seconds", "clips_per_s"]
FLOAT_FORMAT = "%.6g"


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


def plot_curves(metrics_csv: Path, out_png: Path, title: str = "") -> None:
    """Loss and validation scores per epoch; Agg backend so it works on headless cluster nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = read_metrics_frame(metrics_csv)
    if frame.empty:
        return
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "task_loss", "kd_loss"):
        if (frame[key].fillna(0) != 0).any():
            ax_loss.plot(frame["epoch"], frame[key], marker="o", label=key)
    ax_loss.set_xlabel("epoch"), ax_loss.set_ylabel("loss"), ax_loss.legend()
    scores = []
    for key, marker, label in (("val_map", "o", "val mAP"), ("val_accuracy", "s", "val accuracy")):
        if frame[key].notna().any():
            ax_map.plot(frame["epoch"], frame[key], marker=marker, label=label)
            scores += frame[key].dropna().tolist()
    if scores:
        ax_map.set_ylim(*score_axis(scores))
    ax_map.set_xlabel("epoch"), ax_map.set_ylabel("validation score"), ax_map.legend()
    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def score_axis(values: list[float]) -> tuple[float, float]:
    """y-limits that show how scores move: the data's range plus a margin, kept inside [0, 1].
    A fixed 0-1 axis flattens a run that climbs from 0.10 to 0.15 into a straight line."""
    low, high = min(values), max(values)
    margin = max(0.1 * (high - low), 0.01)
    return max(0.0, low - margin), min(1.0, high + margin)
