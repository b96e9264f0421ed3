"""The CMKD grid report: reports/<dataset>/cmkd.md with mean, spread and per-seed values, and PNGs.

A KD-minus-baseline difference is called an effect only when it exceeds the seed spread
(:func:`pipeline.metrics.difference_is_effect`); with one seed no difference is called either way.
"""

from __future__ import annotations

from pathlib import Path

from .grid import GridSpec, cells_for
from .metrics import difference_is_effect, mean_and_spread


def _values(results: dict, cell: str, key: str) -> list[float]:
    return [float(results[cell][seed][key]) for seed in sorted(results.get(cell, {}))]


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    stats = mean_and_spread(values)
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}" if stats["n"] > 1 else f"{stats['mean']:.4f}"


def _verdict(kd: list[float], base: list[float]) -> str:
    effect = difference_is_effect(kd, base)
    if effect is None:
        return "one seed: no call"
    if not effect:
        return "within spread: no effect"
    return "KD helps" if sum(kd) / len(kd) > sum(base) / len(base) else "KD hurts"


def comparisons(spec: GridSpec) -> list[tuple[str, str, str, str]]:
    """(label, teacher cell, baseline cell, KD cell) rows of the main table."""
    baseline = {"cnn": "cnn", "ast": "ast"}
    rows = []
    for cell in cells_for(spec):
        if cell.kd == "none":
            continue
        label = f"{cell.teacher} -> {cell.model} ({cell.kd}{', ' + ' '.join(cell.overrides) if cell.overrides else ''})"
        rows.append((label, cell.teacher, baseline[cell.model], cell.name))
    return rows


def write_report(spec: GridSpec, results: dict, out_dir: str | Path, seconds: float, key: str = "map") -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = {"map": "mAP", "accuracy": "accuracy"}[key]
    lines = [f"# CMKD grid on `{spec.dataset}`", "",
             f"CNN = `{spec.cnn}`, AST = `{spec.ast}`; {spec.seeds} seed(s) per cell; eval {metric} "
             f"(mean ± sample std over seeds). Grid time {seconds / 60:.1f} min. A difference counts as an "
             f"effect only when it exceeds the larger seed spread.", "",
             f"| pair | teacher {metric} | no-KD student | KD student | KD - no-KD | verdict |",
             "|---|---|---|---|---|---|"]
    for label, teacher, base, kd in comparisons(spec):
        t, b, s = _values(results, teacher, key), _values(results, base, key), _values(results, kd, key)
        diff = (sum(s) / len(s) - sum(b) / len(b)) if (s and b) else float("nan")
        lines.append(f"| {label} | {_fmt(t)} | {_fmt(b)} | {_fmt(s)} | {diff:+.4f} | {_verdict(s, b)} |")
    lines += ["", "## Per-seed values", "", "| cell | " + " | ".join(f"seed {s}" for s in range(spec.seeds)) + " |",
              "|---|" + "---|" * spec.seeds]
    for cell in cells_for(spec):
        values = _values(results, cell.name, key)
        lines.append(f"| {cell.name} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    oof = [results[c.name][s].get("out_of_fold") for c in cells_for(spec) if c.crossfit
           for s in sorted(results.get(c.name, {}))]
    if any(oof):
        lines += ["", "Cross-fitted teacher, out-of-fold " + metric + " per seed: "
                  + ", ".join(f"{o[key]:.4f}" for o in oof if o)]
    path = out_dir / "cmkd.md"
    path.write_text("\n".join(lines) + "\n")
    _plot(spec, results, out_dir / "cmkd.png", key, metric)
    return path


def _plot(spec: GridSpec, results: dict, path: Path, key: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.name for c in cells_for(spec) if results.get(c.name)]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names)), 4))
    for i, name in enumerate(names):
        values = _values(results, name, key)
        stats = mean_and_spread(values)
        ax.bar(i, stats["mean"], yerr=stats["std"] if stats["n"] > 1 else None, capsize=4, color="#8fb3d9")
        ax.scatter([i] * len(values), values, color="black", s=12, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_ylabel(f"eval {metric}")
    ax.set_title(f"CMKD grid on {spec.dataset} ({spec.seeds} seed(s); dots = seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table_text(path: Path) -> str:
    """The main table of a written report, for printing at the end of `make demo`."""
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: lines.index("## Per-seed values")] if line)
