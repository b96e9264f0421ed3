"""The grid report's figures.

``cmkd.png``: one panel per design; for each KD pair the teacher (one run), the no-KD student, the KD
student and the prior-control student side by side, bars at the mean and a dot per seed, so a gain
that lives inside the seed scatter is visibly one.

``cmkd-per-class.png``: per-class eval AP of the teacher against the KD student, one panel per
cross-model pair: points above the diagonal are classes where the student ends above its teacher.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .grid import GridSpec, cells_for

COLOURS = {"teacher": "#c9a66b", "no-KD": "#9db4cc", "KD": "#4f7cac", "prior control": "#bbbbbb"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _runs(results: dict, cell: str, key: str, seeds) -> list[float]:
    return [float(results[cell][s][key]) for s in seeds if s in results.get(cell, {})]


def plot_grid(spec: GridSpec, results: dict, path: Path, key: str, metric: str) -> None:
    plt = _pyplot()
    seeds = range(spec.seeds)
    cells = cells_for(spec)
    names = {c.name for c in cells}
    designs = [d for d in spec.designs if any(c.design == d and c.kd != "none" and not c.control for c in cells)]
    fig, axes = plt.subplots(1, max(len(designs), 1), figsize=(7 * max(len(designs), 1), 4.5), squeeze=False)
    for ax, design in zip(axes[0], designs):
        pairs = [c for c in cells if c.design == design and c.kd != "none" and not c.control]
        everything = []
        for i, cell in enumerate(pairs):
            prior = f"{design}/prior_to_{cell.model}"
            bars = [("teacher", _runs(results, cell.teacher, key, [0])),
                    ("no-KD", _runs(results, cell.baseline, key, seeds)),
                    ("KD", _runs(results, cell.name, key, seeds)),
                    ("prior control", _runs(results, prior, key, seeds) if prior in names else [])]
            for j, (what, values) in enumerate(bars):
                if not values:
                    continue
                x = i + (j - 1.5) * 0.2
                ax.bar(x, np.mean(values), width=0.18, color=COLOURS[what], label=what if i == 0 else None)
                ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
                everything += values
        ax.set_xticks(range(len(pairs)), [c.name.split("/", 1)[1] for c in pairs], rotation=30, ha="right")
        if everything:  # an axis around the data, not 0-1: the differences are what matters
            low, high = min(everything), max(everything)
            pad = max(0.02, 0.15 * (high - low))
            ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
        ax.set_ylabel(f"eval {metric}")
        ax.set_title(f"{design} design ({spec.seeds} seed(s); dots = seeds)")
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"CMKD grid on {spec.dataset}: {spec.cnn} / {spec.ast}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_per_class(spec: GridSpec, results: dict, path: Path) -> None:
    plt = _pyplot()
    pairs = [c for c in cells_for(spec) if c.group == "cross-model" and results.get(c.name) and results.get(c.teacher)]
    if not pairs:
        return
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 4), squeeze=False)
    for ax, cell in zip(axes[0], pairs):
        teacher = results[cell.teacher][0].get("per_class_ap") or []
        students = [results[cell.name][s].get("per_class_ap") or [] for s in sorted(results[cell.name])]
        points = [(t, np.mean([s[i] for s in students if i < len(s) and s[i] is not None]))
                  for i, t in enumerate(teacher) if t is not None and any(i < len(s) and s[i] is not None for s in students)]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, ys, s=12, color="#4f7cac")
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("teacher AP")
        ax.set_ylabel("KD student AP (mean over seeds)")
        ax.set_title(cell.name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
