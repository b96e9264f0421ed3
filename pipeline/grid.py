"""The paper's grid: supervised CNN and AST, KD in both directions and within each family, the
consistency modes for one direction, in-sample vs cross-fitted logits and two temperatures.

Every cell is an ordinary run (``runs/<dataset>/cmkd/<cell>/seed<s>``) made by the same trainer and
stage one as the make targets, with n seeds; students of seed s learn from the teacher of seed s,
so the spread includes the teachers' own variation. Finished cells are skipped: a killed grid
resumes. The report (:mod:`pipeline.report`) turns the summaries into ``reports/<dataset>/cmkd.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .augment import AugmentSettings
from .config import Config, apply_overrides
from .distill import kd_job_extras
from .training.runner import run_training


@dataclass(frozen=True)
class Cell:
    name: str  # run name under runs/<dataset>/cmkd/
    model: str  # "cnn" | "ast"
    teacher: str = ""  # teacher cell name ("" = supervised)
    kd: str = "none"  # clean | replay | online
    overrides: tuple[str, ...] = ()
    crossfit: int = 0  # a cross-fitted teacher cell (k members)
    group: str = ""  # which comparison in the report


@dataclass
class GridSpec:
    dataset: str = "demo"
    cnn: str = "efficientnet_tiny"
    ast: str = "ast_micro"
    seeds: int = 1
    small: bool = False  # the demo's grid: both directions only
    views: int = 4
    crossfit: int = 3
    paper_tau: float = 2.0
    direction: str = "ast_to_cnn"  # the pair the consistency, cross-fitting and temperature cells use
    only: tuple[str, ...] = ()  # run just these cells (their teachers are added); () = all
    fold: int | None = None  # fold-based data: train on the other folds, evaluate on this one
    overrides: list[str] = field(default_factory=list)


def cells_for(spec: GridSpec) -> list[Cell]:
    cells = [Cell("cnn", "cnn", group="teachers"), Cell("ast", "ast", group="teachers"),
             Cell("ast_to_cnn", "cnn", "ast", "clean", group="cross-model"),
             Cell("cnn_to_ast", "ast", "cnn", "clean", group="cross-model")]
    if not spec.small:
        teacher, student = spec.direction.split("_to_")
        pair = f"{teacher}_to_{student}"
        cells += [
            Cell("cnn_to_cnn", "cnn", "cnn", "clean", group="same-model"),
            Cell("ast_to_ast", "ast", "ast", "clean", group="same-model"),
            Cell(f"{pair}_replay", student, teacher, "replay", group="consistency"),
            Cell(f"{pair}_online", student, teacher, "online", group="consistency"),
            Cell(f"{teacher}_crossfit", teacher, crossfit=spec.crossfit, group="teachers"),
            Cell(f"{pair}_crossfit", student, f"{teacher}_crossfit", "clean", group="cross-fitting"),
            Cell(f"{pair}_tau", student, teacher, "clean",
                 (f"tau={spec.paper_tau}", "tau_student=true", "tau_squared=true"), group="temperature"),
        ]
    if not spec.only:
        return cells
    by_name = {c.name: c for c in cells}
    unknown = set(spec.only) - set(by_name)
    if unknown:
        raise ValueError(f"unknown grid cells {sorted(unknown)}; known: {sorted(by_name)}")
    wanted = set(spec.only)
    wanted |= {by_name[n].teacher for n in spec.only if by_name[n].teacher}
    wanted |= {c.model for c in cells if c.name in wanted and c.kd != "none"}  # baselines of the students
    return [c for c in cells if c.name in wanted]


def estimated_trainings(spec: GridSpec) -> int:
    return sum((c.crossfit or 1) for c in cells_for(spec)) * spec.seeds


def estimate_seconds(spec: GridSpec, config: Config, train_clips: int, steps: int = 3) -> float:
    """Rough grid duration from a few timed training steps of each family on random input (model
    time only; data loading overlaps it in worker processes)."""
    import torch

    from .models import create_model

    from .seeding import set_threads

    set_threads(config.threads)  # time with the threads the runs will use
    seconds_per_clip = {}
    for family, name in (("cnn", spec.cnn), ("ast", spec.ast)):
        model = create_model(name, num_classes=10, n_mels=config.n_mels, target_length=config.target_length)
        optimizer = torch.optim.Adam(model.parameters())
        batch = torch.randn(config.batch_size, config.target_length, config.n_mels)
        started = 0.0
        for step in range(steps + 1):
            if step == 1:  # the first step pays one-off allocation costs
                started = time.perf_counter()
            optimizer.zero_grad()
            model(batch).square().mean().backward()
            optimizer.step()
        seconds_per_clip[family] = (time.perf_counter() - started) / (steps * config.batch_size)
    total = 0.0
    for seed in range(spec.seeds):
        for cell in cells_for(spec):
            if (Path("runs") / spec.dataset / f"cmkd/{cell.name}/seed{seed}" / "summary.json").exists():
                continue  # finished cells are reused
            per_epoch = seconds_per_clip[cell.model] * train_clips * (1.0 + (cell.kd == "online"))
            data_passes = (cell.crossfit - 1) if cell.crossfit else 1  # k members, each on (k-1)/k of the clips
            total += per_epoch * config.epochs * data_passes
    return total


def run_grid(spec: GridSpec, base: Config, progress: bool = True) -> dict:
    """Run every cell for every seed; returns {cell: {seed: summary}}."""
    from .engine import StageOneJob, run_stage_one
    from .store import store_is_complete

    results: dict[str, dict[int, dict]] = {}
    started = time.time()
    for seed in range(spec.seeds):
        for cell in cells_for(spec):
            run = f"cmkd/{cell.name}/seed{seed}"
            run_dir = Path("runs") / spec.dataset / run
            config = apply_overrides(base, [f"model={spec.cnn if cell.model == 'cnn' else spec.ast}", f"seed={seed}",
                                            *spec.overrides, *cell.overrides])
            if (run_dir / "summary.json").exists():
                results.setdefault(cell.name, {})[seed] = json.loads((run_dir / "summary.json").read_text())
                continue
            print(f"\n=== {cell.name} seed {seed} ({time.time() - started:.0f} s into the grid) ===")
            if cell.crossfit:
                from .crossfit import run_crossfit

                summary = run_crossfit(spec.dataset, config, run, cell.crossfit, fold=spec.fold, progress=progress)
            elif cell.kd == "none":
                summary = run_training(spec.dataset, config, run, fold=spec.fold, progress=progress)
            else:
                teacher_dir = Path("runs") / spec.dataset / f"cmkd/{cell.teacher}/seed{seed}"
                # a teacher that any replay cell learns from gets K views; the name says so, so a grid
                # that adds replay later never reuses a view-less store
                views = spec.views if any(c.kd == "replay" and c.teacher == cell.teacher for c in cells_for(spec)) else 0
                suffix = f"-views{views}" if views else ""
                store = Path("stores") / spec.dataset / f"cmkd-{cell.teacher}-seed{seed}{suffix}.zarr"
                if cell.kd != "online":
                    if not store_is_complete(store):
                        run_stage_one(StageOneJob(spec.dataset, str(teacher_dir), str(store), views=views,
                                                  view_seed=seed, scheduler="inline",
                                                  augment=AugmentSettings.from_config(config)), progress=progress)
                config = apply_overrides(config, [f"kd={cell.kd}", f"logits={store if cell.kd != 'online' else ''}",
                                                  f"teacher={teacher_dir if cell.kd == 'online' else ''}"])
                summary = run_training(spec.dataset, config, run, fold=spec.fold, progress=progress,
                                       job_extras=kd_job_extras(Path("data_manifests") / spec.dataset))
            results.setdefault(cell.name, {})[seed] = summary
    return results
