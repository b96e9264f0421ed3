"""What a run writes besides checkpoints: metrics.csv (one row per epoch), summary.json and a PNG curve."""

from __future__ import annotations

import csv
import json
from pathlib import Path

METRIC_COLUMNS = ["epoch", "train_loss", "task_loss", "kd_loss", "lr", "val_map", "val_mauc", "val_dprime",
                  "val_accuracy", "seconds", "clips_per_s"]


def append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def truncate_metrics(path: Path, last_epoch: int) -> None:
    """On resume, drop rows of epochs after the checkpoint (they were lost with the kill)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")


def plot_curves(metrics_csv: Path, out_png: Path, title: str = "") -> None:
    """Loss and validation scores per epoch; Agg backend so it works on headless cluster nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_metrics(metrics_csv)
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "task_loss", "kd_loss"):
        values = [float(r[key]) if r[key] not in ("", "nan") else float("nan") for r in rows]
        if any(v == v and v != 0 for v in values):
            ax_loss.plot(epochs, values, marker="o", label=key)
    ax_loss.set_xlabel("epoch"), ax_loss.set_ylabel("loss"), ax_loss.legend()
    scores = []
    for key, marker, label in (("val_map", "o", "val mAP"), ("val_accuracy", "s", "val accuracy")):
        values = [float(r[key]) if r[key] not in ("", "nan") else float("nan") for r in rows]
        if any(v == v for v in values):
            ax_map.plot(epochs, values, marker=marker, label=label)
            scores += [v for v in values if v == v]
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
