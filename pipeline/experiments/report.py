"""The CMKD grid report: reports/<dataset>/cmkd.md, cmkd.png (the paired differences with their intervals)
and (per class) cmkd-per-class.png.

Every KD row is compared, seed by seed, with the no-KD student of the same seed and with the prior
control of the same seed (:func:`pipeline.metrics.paired_difference`: mean, std and a 95 % t
interval of the paired differences). The verdict reads the interval: only a gain over the prior
control, whose targets carry no knowledge of the clips, is called knowledge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..metrics import mean_and_spread, paired_difference
from .grid import Cell, GridSpec, cells_for

METRIC_NAMES = {"map": "mAP", "accuracy": "accuracy"}


def _values(results: dict, cell: str, key: str, seeds: list[int]) -> list[float]:
    runs = results.get(cell, {})
    return [float(runs[s][key]) for s in seeds if s in runs]


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    stats = mean_and_spread(values)
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}" if stats["n"] > 1 else f"{stats['mean']:.4f}"


def _fmt_paired(paired: dict | None) -> str:
    if not paired:
        return "n/a"
    if paired["n"] < 2:
        return f"{paired['mean']:+.4f}"
    return f"{paired['mean']:+.4f} ± {paired['std']:.4f} [{paired['low']:+.4f}, {paired['high']:+.4f}]"


def _paired(results: dict, a: str, b: str, key: str, seeds: list[int]) -> dict | None:
    both = [s for s in seeds if s in results.get(a, {}) and s in results.get(b, {})]
    if not both:
        return None
    return paired_difference(_values(results, a, key, both), _values(results, b, key, both))


def verdict(over_baseline: dict | None, over_prior: dict | None) -> str:
    """Words for a KD row from its two paired intervals (see the module docstring)."""
    if not over_baseline or over_baseline["verdict"] == "one seed: no call":
        return "one seed: no call"
    if over_prior and over_prior["verdict"] == "helps":
        return "knowledge helps" + ("" if over_baseline["verdict"] == "helps" else " (vs prior only)")
    if over_baseline["verdict"] == "helps":
        return "helps, but not beyond the prior control" if over_prior else "KD helps"
    if over_baseline["verdict"] == "hurts":
        return "KD hurts"
    return "no effect"


def _label(cell: Cell) -> str:
    if cell.control == "prior":
        return f"prior -> {cell.model} (control)"
    source = cell.teacher.replace("teacher/", "")
    label = f"{'shuffled ' if cell.control else ''}{source} -> {cell.model} ({cell.kd}"
    return label + (", " + " ".join(cell.overrides) if cell.overrides else "") + ")"


def group_scores(summary: dict, groups: dict[str, list[int]]) -> dict[str, float]:
    """Mean AP over each class group's scored classes, from a run's per-class AP."""
    ap = summary.get("per_class_ap") or []
    out = {}
    for group, indices in groups.items():
        values = [ap[i] for i in indices if i < len(ap) and ap[i] is not None]
        out[group] = float(np.mean(values)) if values else math.nan
    return out


def _group_values(results: dict, cell: str, group: str, groups: dict, seeds: list[int]) -> list[float]:
    runs = results.get(cell, {})
    values = [group_scores(runs[s], groups)[group] for s in seeds if s in runs]
    return [] if any(math.isnan(v) for v in values) else values  # a group some run left unscored: n/a


@dataclass(frozen=True)
class Comparison:
    """One KD cell's two paired differences, as the main table prints them and the figure draws them."""

    cell: Cell
    label: str
    over_baseline: dict | None  # KD student − no-KD student, per seed (paired_difference), None: no pair
    over_prior: dict | None  # KD student − prior-control student, per seed; None for the prior control itself


def comparisons(spec: GridSpec, results: dict, key: str) -> list[Comparison]:
    """Every KD cell (controls included) with its paired differences, in the grid's order."""
    seeds = list(range(spec.seeds))
    names = {c.name for c in cells_for(spec)}
    out = []
    for cell in cells_for(spec):
        if cell.is_teacher or cell.kd == "none":
            continue
        prior = f"{cell.design}/prior_to_{cell.model}"
        over_prior = _paired(results, cell.name, prior, key, seeds) if prior in names and prior != cell.name else None
        out.append(Comparison(cell, _label(cell), _paired(results, cell.name, cell.baseline, key, seeds), over_prior))
    return out


def main_table(spec: GridSpec, results: dict, key: str) -> list[str]:
    metric = METRIC_NAMES[key]
    seeds = list(range(spec.seeds))
    lines = [
        f"| design | pair | teacher {metric} | no-KD student | KD student | KD − no-KD (paired, 95 % CI) "
        f"| KD − prior control (paired, 95 % CI) | student − teacher | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparisons(spec, results, key):
        cell, over_base, over_prior = row.cell, row.over_baseline, row.over_prior
        teacher = _values(results, cell.teacher, key, [0]) if cell.teacher and not cell.control else []
        student = _values(results, cell.name, key, seeds)
        beats = f"{np.mean(student) - teacher[0]:+.4f}" if (teacher and student) else "n/a"
        lines.append(
            f"| {cell.design} | {row.label} | {_fmt(teacher)} | "
            f"{_fmt(_values(results, cell.baseline, key, seeds))} | {_fmt(student)} | {_fmt_paired(over_base)} "
            f"| {_fmt_paired(over_prior)} | {beats} | "
            f"{'control' if cell.control == 'prior' else verdict(over_base, over_prior)} |"
        )
    return lines


def group_table(spec: GridSpec, results: dict, groups: dict[str, list[int]]) -> list[str]:
    """Per class group: does the CNN teacher help the AST on local classes, the AST the CNN on temporal?"""
    seeds = list(range(spec.seeds))
    lines = [
        "| design | pair | group | teacher AP | no-KD student | KD student | KD − no-KD (paired, 95 % CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in cells_for(spec):
        if cell.is_teacher or cell.kd == "none":
            continue
        for group in groups:
            kd = _group_values(results, cell.name, group, groups, seeds)
            base = _group_values(results, cell.baseline, group, groups, seeds)
            teacher = (
                _group_values(results, cell.teacher, group, groups, [0]) if cell.teacher and not cell.control else []
            )
            paired = paired_difference(kd, base) if (kd and len(kd) == len(base)) else None
            lines.append(
                f"| {cell.design} | {_label(cell)} | {group} | {_fmt(teacher)} | {_fmt(base)} | {_fmt(kd)} "
                f"| {_fmt_paired(paired)} |"
            )
    return lines


def _ap(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def teacher_lines(spec: GridSpec, results: dict, key: str, groups: dict) -> list[str]:
    metric = METRIC_NAMES[key]
    lines = [
        f"| teacher | eval {metric} | epochs trained | " + " | ".join(f"{g} AP" for g in groups) + " |",
        "|---|---|---|" + "---|" * len(groups),
    ]
    for cell in cells_for(spec):
        if not cell.is_teacher or not results.get(cell.name):
            continue
        summary = results[cell.name][0]
        per_group = group_scores(summary, groups)
        lines.append(
            f"| {cell.name} ({summary.get('model', '')}) | {summary[key]:.4f} | "
            f"{summary.get('epochs_trained', 'n/a')} | " + " | ".join(_ap(per_group[g]) for g in groups) + " |"
        )
        if summary.get("out_of_fold"):
            lines.append(
                f"| {cell.name}, out-of-fold on its train clips | {summary['out_of_fold'][key]:.4f} | | "
                + " | " * len(groups)
            )
    return lines


def write_report(
    spec: GridSpec,
    results: dict,
    out_dir: str | Path,
    seconds: float,
    key: str = "map",
    diagnostics: dict[str, str] | None = None,
    groups: dict[str, list[int]] | None = None,
) -> Path:
    """diagnostics: {store path: formatted soft-target diagnostics}; groups: class groups (embedded corpus)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = groups or {}
    metric = METRIC_NAMES[key]
    lines = [
        f"# CMKD grid on `{spec.dataset}`",
        "",
        f"CNN = `{spec.cnn}`, AST = `{spec.ast}`; teachers trained once (their recipe's teacher budget); "
        f"students over {spec.seeds} seed(s); eval {metric}, mean ± sample std over seeds. This grid run took "
        f"{seconds / 60:.1f} min (cells finished by earlier runs are reused, not counted).",
        "",
        "Designs: **equal** = the student trains with the teacher's budget (the paper's setting: does the "
        "student beat its teacher?); **short** = the student gets the recipe's shorter student budget. "
        "Differences are paired per seed (KD student vs the no-KD student and vs the prior-control student "
        "of the same seed) with a 95 % t interval; an effect is called only when the interval excludes 0. "
        "The prior control's targets carry no knowledge of the clips, so only a gain over it is knowledge.",
        "",
        *main_table(spec, results, key),
        "",
        "## Teachers",
        "",
        *teacher_lines(spec, results, key, groups),
    ]
    if diagnostics:
        lines += ["", "## Soft targets", ""]
        for store, text in diagnostics.items():
            lines += [f"`{store}`:", "", *[f"- {line}" for line in text.splitlines()], ""]
    if groups:
        lines += ["", "## Per class group (eval AP over the group's classes)", "", *group_table(spec, results, groups)]
    seeds = list(range(spec.seeds))
    lines += [
        "",
        "## Per-seed values",
        "",
        "| cell | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---|" * spec.seeds,
    ]
    for cell in cells_for(spec):
        values = _values(results, cell.name, key, [0] if cell.is_teacher else seeds)
        lines.append(f"| {cell.name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    path = out_dir / "cmkd.md"
    path.write_text("\n".join(lines) + "\n")
    from .report_plots import plot_grid, plot_per_class

    plot_grid(spec, comparisons(spec, results, key), out_dir / "cmkd.png", metric)
    plot_per_class(spec, results, out_dir / "cmkd-per-class.png")
    return path


def table_text(path: Path) -> str:
    """The main table of a written report, for printing at the end of `make demo`."""
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: lines.index("## Teachers")] if line)


def family_table(
    results: dict,
    groups: dict[str, list[int]],
    key: str,
    seeds: list[int],
    cnn: str = "equal/cnn",
    ast: str = "equal/ast",
) -> list[str]:
    """The corpus's design check: both families at one budget, overall and per class group, with the
    AST − CNN difference paired by seed (same clip order and corpus, only the architecture differs)."""
    rows = [
        (f"all classes ({METRIC_NAMES[key]})", _values(results, cnn, key, seeds), _values(results, ast, key, seeds))
    ]
    rows += [
        (
            f"{group} group ({len(groups[group])} classes)",
            _group_values(results, cnn, group, groups, seeds),
            _group_values(results, ast, group, groups, seeds),
        )
        for group in groups
    ]
    lines = ["| classes | CNN | AST | AST − CNN (paired, 95 % CI) | better |", "|---|---|---|---|---|"]
    for name, cnn_values, ast_values in rows:
        paired = (
            paired_difference(ast_values, cnn_values) if cnn_values and len(cnn_values) == len(ast_values) else None
        )
        if not paired or paired["verdict"] == "one seed: no call":
            better = "one seed: no call"
        else:
            better = {"helps": "AST", "hurts": "CNN"}.get(paired["verdict"], "neither (interval holds 0)")
        lines.append(f"| {name} | {_fmt(cnn_values)} | {_fmt(ast_values)} | {_fmt_paired(paired)} | {better} |")
    return lines
