"""The grid report's figures.

``cmkd.png``: a forest plot per design, one row per KD cell: the paired difference of its eval score
from the no-KD student and from the prior-control student of the same seed, each a mean with its 95 %
t interval (the numbers of the report's main table, from :func:`pipeline.experiments.report.comparisons`) and a
small dot per seed; a line at zero, so an interval that crosses it is visibly no call. Control rows
(prior and shuffled teachers) sit on a grey band.

``cmkd-per-class.png``: per-class eval AP of the teacher against the KD student, one panel per
cross-model pair: points above the diagonal are classes where the student ends above its teacher.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..training.runlog import square_limits
from .grid import GridSpec, cells_for

# the two differences each row shows: (attribute of Comparison, legend label, colour, marker, offset in the row)
ESTIMATES = (
    ("over_baseline", "KD − no-KD student", "#4f7cac", "o", -0.14),
    ("over_prior", "KD − prior-control student", "#c47a2c", "D", 0.14),
)
CONTROL_BAND = "#e6e6e6"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grid(spec: GridSpec, rows: list, path: Path, metric: str) -> None:
    """cmkd.png: the forest plot of every design's KD cells (see the module docstring)."""
    plt = _pyplot()
    fig = forest_figure(spec, rows, metric)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def forest_figure(spec: GridSpec, rows: list, metric: str):
    """``rows``: pipeline.experiments.report.Comparison values (not imported here: the report imports this module)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    designs = [d for d in spec.designs if any(r.cell.design == d for r in rows)] or list(spec.designs[:1])
    height = max(3.0, 1.6 + 0.42 * max((sum(r.cell.design == d for r in rows) for d in designs), default=1))
    fig, axes = plt.subplots(
        1, len(designs), figsize=(max(9.0, 7.5 * len(designs)), height), squeeze=False, sharex=True
    )  # one scale: the designs compare
    for ax, design in zip(axes[0], designs, strict=True):
        mine = [r for r in rows if r.cell.design == design]
        for y, row in enumerate(mine):
            if row.cell.control:
                ax.axhspan(y - 0.45, y + 0.45, color=CONTROL_BAND, zorder=0)
            for attribute, _, colour, marker, offset in ESTIMATES:
                paired = getattr(row, attribute)
                if not paired:
                    continue
                ax.scatter(
                    paired["diffs"],
                    [y + offset] * len(paired["diffs"]),
                    s=16,
                    color=colour,
                    alpha=0.6,
                    zorder=2,
                    linewidths=0,
                )
                interval = not math.isnan(paired["low"])
                xerr = [[paired["mean"] - paired["low"]], [paired["high"] - paired["mean"]]] if interval else None
                ax.errorbar(
                    paired["mean"],
                    y + offset,
                    xerr=xerr,
                    fmt=marker,
                    color=colour,
                    capsize=3,
                    markersize=6,
                    markerfacecolor=colour if interval else "white",
                    zorder=3,
                )
        ax.axvline(0.0, color="black", linewidth=1.3, zorder=1)
        ax.margins(x=0.1)  # zero stays off the frame even when every difference is on one side of it
        ax.set_yticks(
            range(len(mine)),
            [r.label + ("" if "control" in r.label or not r.cell.control else " (control)") for r in mine],
            fontsize=8,
        )
        for tick, row in zip(ax.get_yticklabels(), mine, strict=True):
            if row.cell.control:
                tick.set_color("#666666")
        ax.set_ylim(len(mine) - 0.5, -0.5)  # the grid's order, top to bottom
        ax.set_xlabel(f"paired difference in eval {metric} (mean, 95 % t interval, dots = seeds)", fontsize=9)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        seeds = max((r.over_baseline["n"] for r in mine if r.over_baseline), default=0)
        note = "" if seeds >= 2 else ": one seed, so no interval (hollow markers)"
        ax.set_title(f"{design} design, {seeds} paired seed(s){note}", fontsize=10)
    handles = [Patch(color=colour, label=label) for _, label, colour, _, _ in ESTIMATES]
    handles.append(Patch(color=CONTROL_BAND, label="control row (prior or shuffled teacher)"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        f"CMKD grid on {spec.dataset} ({spec.cnn} / {spec.ast})\n"
        f"right of 0: the KD student scores higher than the student it is paired with",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_per_class(spec: GridSpec, results: dict, path: Path) -> None:
    plt = _pyplot()
    pairs = [c for c in cells_for(spec) if c.group == "cross-model" and results.get(c.name) and results.get(c.teacher)]
    if not pairs:
        return
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 4.4), squeeze=False, layout="constrained")
    for ax, cell in zip(axes[0], pairs):
        teacher = results[cell.teacher][0].get("per_class_ap") or []
        students = [results[cell.name][s].get("per_class_ap") or [] for s in sorted(results[cell.name])]
        points = [
            (t, np.mean([s[i] for s in students if i < len(s) and s[i] is not None]))
            for i, t in enumerate(teacher)
            if t is not None and any(i < len(s) and s[i] is not None for s in students)
        ]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, s=12, color="#4f7cac")
            low, high = square_limits([*xs, *ys])  # the data's range: AP of 0-0.4 filled a corner of 0-1
        else:
            low, high = 0.0, 1.0
        ax.plot([low, high], [low, high], color="grey", linewidth=0.8)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_aspect("equal")
        ax.set_xlabel("teacher AP")
        ax.set_ylabel("KD student AP (mean over seeds)")
        ax.set_title(f"{cell.name}\nabove the diagonal: the student beats its teacher", fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
