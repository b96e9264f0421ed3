"""The paper's grid: teachers trained to convergence once, then students in two designs, KD in both
directions and within each family, two control teachers, and (for one pair) the consistency modes,
cross-fitted logits and the paper's temperature.

Designs (the report labels every row with its design):

* ``equal``: a student gets the teacher's own budget (the recipe's ``teacher`` section). This is the
  paper's setting, where the claim is "the student beats its teacher"; the no-KD student of a family
  is that family's teacher recipe, so at seed 0 it *is* the teacher run (reused, not retrained).
* ``short``: a student gets the recipe's student budget (its base ``epochs``), shorter than the
  teacher's: the cheap-student use case.

Controls, distilled with exactly the same settings as the real teachers: ``prior`` (the train
split's label prior for every clip) and ``shuffled`` (a real teacher's logits on the wrong clips),
see :mod:`pipeline.experiments.controls`. KD gain over no-KD mixes knowledge with regularisation; only the gain
over the prior control is knowledge.

Every cell is an ordinary run (``runs/<dataset>/cmkd/<cell>/seed<s>``) made by the same trainer and
stage one as the make targets; no-KD students go through the same stage-two entry point as
``make student LOGITS=none``. Teachers are trained once (seed 0) and every seed's students learn
from them, so the seed spread is that of the students; each KD student is compared with the no-KD
student of the same seed (paired). Finished cells are skipped and a cell killed part-way continues
from its last finished epoch, so a killed grid resumes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..augment import AugmentSettings
from ..cluster import ClusterResources
from ..config import Config, apply_overrides
from ..paths import grid_run_dir, store_dir
from ..recipe import Recipe
from . import grid_reuse
from .parallel_runs import RunJob, run_jobs

DESIGNS = ("short", "equal")


@dataclass(frozen=True)
class Cell:
    name: str  # run name under runs/<dataset>/cmkd/
    model: str  # family of the trained model: "cnn" | "ast"
    design: str = ""  # "" for teachers, else one of DESIGNS
    teacher: str = ""  # teacher cell of a KD cell
    kd: str = "none"  # none | clean | replay | online
    control: str = ""  # "" | "prior" | "shuffled": a control store instead of the teacher's logits
    overrides: tuple[str, ...] = ()
    crossfit: int = 0  # a cross-fitted teacher cell (k members)
    group: str = ""  # which comparison of the report

    @property
    def is_teacher(self) -> bool:
        return not self.design

    @property
    def role(self) -> str:
        """The recipe section: teachers and equal-design students train with the teacher budget."""
        return "teacher" if self.design in ("", "equal") else "student"

    @property
    def baseline(self) -> str:
        """The no-KD student this cell is compared with (same design, same family)."""
        return f"{self.design}/{self.model}"


@dataclass
class GridSpec:
    dataset: str = "demo"
    cnn: str = "efficientnet_tiny"
    ast: str = "ast_micro"
    seeds: int = 1
    small: bool = False  # the demo's grid: both directions and the prior control only
    designs: tuple[str, ...] = DESIGNS
    views: int = 4
    crossfit: int = 3
    paper_tau: float = 2.0
    direction: str = "ast_to_cnn"  # the pair the consistency, cross-fitting and temperature cells use
    only: tuple[str, ...] = ()  # run just these cells (their teachers and baselines are added); () = all
    fold: int | None = None  # fold-based data: train on the other folds, evaluate on this one
    overrides: list[str] = field(default_factory=list)
    jobs: int = 1  # runs side by side within a phase (make JOBS=); results do not depend on it
    # "" local processes (parallel_runs); "local" a dask LocalCluster of `jobs` workers; "slurm" SLURM jobs
    # (`cluster`); else a dask scheduler address whose workers declare --resources train=1
    scheduler: str = ""
    cluster: ClusterResources = field(default_factory=ClusterResources)

    def model_name(self, family: str) -> str:
        return self.cnn if family == "cnn" else self.ast


def _design_cells(spec: GridSpec, design: str) -> list[Cell]:
    d = design
    cells = [
        Cell(f"{d}/cnn", "cnn", d, group="no-KD"),
        Cell(f"{d}/ast", "ast", d, group="no-KD"),
        Cell(f"{d}/ast_to_cnn", "cnn", d, "teacher/ast", "clean", group="cross-model"),
        Cell(f"{d}/cnn_to_ast", "ast", d, "teacher/cnn", "clean", group="cross-model"),
        Cell(f"{d}/prior_to_cnn", "cnn", d, "", "clean", "prior", group="control"),
        Cell(f"{d}/prior_to_ast", "ast", d, "", "clean", "prior", group="control"),
    ]
    if spec.small:
        return cells
    cells += [
        Cell(f"{d}/shuffled_ast_to_cnn", "cnn", d, "teacher/ast", "clean", "shuffled", group="control"),
        Cell(f"{d}/shuffled_cnn_to_ast", "ast", d, "teacher/cnn", "clean", "shuffled", group="control"),
        Cell(f"{d}/cnn_to_cnn", "cnn", d, "teacher/cnn", "clean", group="same-model"),
        Cell(f"{d}/ast_to_ast", "ast", d, "teacher/ast", "clean", group="same-model"),
    ]
    if design != "short":  # the mode comparisons once, at the cheaper budget
        return cells
    teacher, student = spec.direction.split("_to_")
    pair = f"{d}/{teacher}_to_{student}"
    return cells + [
        Cell(f"{pair}_replay", student, d, f"teacher/{teacher}", "replay", group="consistency"),
        Cell(f"{pair}_online", student, d, f"teacher/{teacher}", "online", group="consistency"),
        Cell(f"{pair}_crossfit", student, d, f"teacher/{teacher}_crossfit", "clean", group="cross-fitting"),
        Cell(
            f"{pair}_tau",
            student,
            d,
            f"teacher/{teacher}",
            "clean",
            overrides=(f"tau={spec.paper_tau}", "tau_student=true", "tau_squared=true"),
            group="temperature",
        ),
    ]


def _reuses_teacher(cell: Cell, seed: int) -> bool:
    """The equal design's no-KD student at seed 0 has its family's teacher recipe, role and seed: it
    is that run, not retrained."""
    return cell.design == "equal" and cell.kd == "none" and seed == 0


def cells_for(spec: GridSpec) -> list[Cell]:
    unknown = set(spec.designs) - set(DESIGNS)
    if unknown or not spec.designs:
        raise ValueError(f"designs must be among {DESIGNS}, got {list(spec.designs)}")
    cells = [Cell("teacher/cnn", "cnn", group="teachers"), Cell("teacher/ast", "ast", group="teachers")]
    for design in spec.designs:
        cells += _design_cells(spec, design)
    if any(c.teacher.endswith("_crossfit") for c in cells):
        teacher = spec.direction.split("_to_")[0]
        cells.insert(2, Cell(f"teacher/{teacher}_crossfit", teacher, crossfit=spec.crossfit, group="teachers"))
    if not spec.only:
        return cells
    by_name = {c.name: c for c in cells}
    unknown = set(spec.only) - set(by_name)
    if unknown:
        raise ValueError(f"unknown grid cells {sorted(unknown)}; known: {sorted(by_name)}")
    wanted = set(spec.only)
    wanted |= {by_name[n].teacher for n in spec.only if by_name[n].teacher}
    wanted |= {by_name[n].baseline for n in spec.only if not by_name[n].is_teacher}
    # the equal design's seed-0 baseline is its family's teacher run
    wanted |= {
        f"teacher/{by_name[n].model}" for n in wanted if by_name[n].design == "equal" and by_name[n].kd == "none"
    }
    return [c for c in cells if c.name in wanted]


def cell_config(spec: GridSpec, recipe: Recipe, cell: Cell, seed: int) -> Config:
    """The resolved recipe of one cell: its family's section, its role's budget, the grid's and the
    cell's overrides, and the seed (teachers always seed 0: trained once, reused by every seed)."""
    return recipe.resolve(
        cell.role,
        [
            f"model={spec.model_name(cell.model)}",
            f"seed={0 if cell.is_teacher else seed}",
            *spec.overrides,
            *cell.overrides,
        ],
    )


def _unfinished(spec: GridSpec):
    """(cell, seed) of every training the grid still needs: teachers train once, the equal design's
    seed-0 baseline is its teacher, finished runs are reused (a run whose recipe changed is found
    and retrained by run_grid itself)."""
    for seed in range(spec.seeds):
        for cell in cells_for(spec):
            if (cell.is_teacher and seed) or _reuses_teacher(cell, seed):
                continue
            if not (run_dir(spec, cell, seed) / "summary.json").exists():
                yield cell, seed


def estimated_trainings(spec: GridSpec) -> int:
    """How many trainings are still to run (a cross-fitted teacher counts one per member)."""
    return sum(cell.crossfit or 1 for cell, _ in _unfinished(spec))


def run_dir(spec: GridSpec, cell: Cell, seed: int) -> Path:
    return grid_run_dir(spec.dataset, cell.name, 0 if cell.is_teacher else seed)


def estimate_seconds(spec: GridSpec, recipe: Recipe, train_clips: int, steps: int = 3) -> float:
    """Rough grid duration from a few timed training steps of each family on random input (model time
    only; data loading overlaps it in worker processes)."""
    import torch

    from ..models import create_model
    from ..seeding import set_threads

    seconds_per_clip = {}
    for family in ("cnn", "ast"):
        config = recipe.resolve("student", [f"model={spec.model_name(family)}", *spec.overrides])
        set_threads(config.threads)  # time with the threads the runs will use
        model = create_model(config.model, num_classes=10, n_mels=config.n_mels, target_length=config.target_length)
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
    for cell, seed in _unfinished(spec):
        epochs = cell_config(spec, recipe, cell, seed).epochs
        per_epoch = seconds_per_clip[cell.model] * train_clips * (1.0 + (cell.kd == "online"))
        data_passes = (cell.crossfit - 1) if cell.crossfit else 1  # k members, each on (k-1)/k of the clips
        total += per_epoch * epochs * data_passes
    return total


def _store_for(spec: GridSpec, cell: Cell, cells: list[Cell], config: Config, progress: bool) -> str:
    """The store a KD cell reads, written on first use: the teacher's (with K views when any replay
    cell learns from it; the name says so, so adding replay later never reuses a view-less store), or a
    control made from it."""
    from ..features import front_end_dict
    from ..manifests import load_manifest
    from ..stage_one import StageOneJob, run_stage_one
    from ..store import store_is_complete
    from ..training.losses import ACTIVATION_OF_KIND, resolve_kd_loss, single_label_task
    from .controls import write_prior_store, write_shuffled_store

    stores = store_dir(spec.dataset)
    fold = f"-fold{spec.fold}" if spec.fold is not None else ""
    manifest_dir = paths.manifest_dir(spec.dataset)
    if cell.control == "prior":
        manifest = load_manifest(manifest_dir)
        kind, _ = resolve_kd_loss(config.kd_loss, single_label_task(config.loss, manifest.single_label))
        activation = ACTIVATION_OF_KIND[kind]  # the prior in the form the student's KD term reads
        store = stores / f"cmkd-prior-{activation}{fold}.zarr"
        if not store_is_complete(store):
            write_prior_store(
                manifest_dir,
                store,
                front_end_dict(config.front_end(manifest.stats(), manifest.name)),
                activation,
                fold=spec.fold,
            )
        return str(store)
    views = spec.views if any(c.kd == "replay" and c.teacher == cell.teacher for c in cells) else 0
    name = cell.teacher.replace("teacher/", "")
    store = stores / f"cmkd-{name}{fold}{f'-views{views}' if views else ''}.zarr"
    if not store_is_complete(store):
        teacher_dir = grid_run_dir(spec.dataset, cell.teacher, 0)
        run_stage_one(
            StageOneJob(
                spec.dataset,
                str(teacher_dir),
                str(store),
                views=views,
                view_seed=0,
                scheduler="inline",
                augment=AugmentSettings.from_config(config),
            ),
            progress=progress,
        )
    if cell.control == "shuffled":
        shuffled = stores / f"cmkd-shuffled-{name}{fold}.zarr"
        if not store_is_complete(shuffled):
            write_shuffled_store(manifest_dir, store, shuffled, seed=0)
        return str(shuffled)
    return str(store)


def set_aside_stale_grid(spec: GridSpec, recipe: Recipe | None = None) -> Path | None:
    """The grid's runs and stores, moved aside when the data or (with ``recipe``) a finished teacher's
    recipe changed (:mod:`pipeline.experiments.grid_reuse`). Returns the folder the old runs went to, if any."""
    teachers = None
    if recipe is not None:
        teachers = {
            cell.name: (run_dir(spec, cell, 0), cell_config(spec, recipe, cell, 0))
            for cell in cells_for(spec)
            if cell.is_teacher
        }
    return grid_reuse.set_aside_stale_grid(spec.dataset, teachers)


def _finished(spec: GridSpec, recipe: Recipe, cell: Cell, seed: int) -> bool:
    """A finished run of this cell, with the recipe it would get now (a superseded student is moved
    aside; teachers were checked with the whole grid)."""
    directory = run_dir(spec, cell, seed)
    if not (directory / "summary.json").exists():
        return False
    return cell.is_teacher or not grid_reuse.set_aside_superseded_run(directory, cell_config(spec, recipe, cell, seed))


def _label(cell: Cell, seed: int) -> str:
    return cell.name if cell.is_teacher else f"{cell.name} seed {seed}"


def _job(spec: GridSpec, recipe: Recipe, cell: Cell, seed: int, waits_for: set[str]) -> RunJob:
    """One cell's run, waiting for its teacher's run when that is still to train."""
    directory = run_dir(spec, cell, seed)
    run = str(directory.relative_to(paths.run_dir(spec.dataset, "")))
    config = cell_config(spec, recipe, cell, seed)
    if cell.is_teacher:
        kind = "crossfit" if cell.crossfit else "train"
        return RunJob(
            _label(cell, seed),
            kind,
            spec.dataset,
            config,
            run,
            directory,
            fold=spec.fold,
            crossfit=cell.crossfit,
            resume=_resumable(directory, config),
        )
    after = (cell.teacher,) if cell.teacher in waits_for else ()
    return RunJob(
        _label(cell, seed),
        "student",
        spec.dataset,
        config,
        run,
        directory,
        fold=spec.fold,
        after=after,
        resume=_resumable(directory, config),
    )


def _resumable(directory: Path, config) -> bool:
    """A run killed part-way (a grid stopped mid-cell) continues from its last finished epoch; one
    trained with another recipe is set aside first and starts afresh."""
    if not any(directory.glob("**/checkpoints/last.pt")):
        return False
    return not grid_reuse.set_aside_superseded_run(directory, config)


def _wire_teacher(spec: GridSpec, cell: Cell, cells: list[Cell], job: RunJob, progress: bool) -> RunJob:
    """Right before a KD student starts (its teacher has finished): point it at the teacher, writing
    the store it reads on first use."""
    if cell.kd == "online":
        teacher = grid_run_dir(spec.dataset, cell.teacher, 0)
        config = apply_overrides(job.config, {"kd": "online", "logits": "", "teacher": str(teacher)})
    elif cell.kd != "none":
        store = _store_for(spec, cell, cells, job.config, progress)
        config = apply_overrides(job.config, {"kd": cell.kd, "logits": store, "teacher": ""})
    else:
        return job
    return dataclasses.replace(job, config=config)


def run_grid(spec: GridSpec, recipe: Recipe, progress: bool = True) -> dict:
    """Run every cell for every seed; returns {cell: {seed: summary}} (teachers: every seed maps to
    their one run). ``spec.jobs`` runs share the machine (:mod:`pipeline.experiments.parallel_runs`); a KD
    student starts once its teacher has finished, the others at once."""
    set_aside_stale_grid(spec, recipe)
    cells = cells_for(spec)
    todo = [
        (cell, seed)
        for seed in range(spec.seeds)
        for cell in cells
        if not (cell.is_teacher and seed)
        and not _reuses_teacher(cell, seed)
        and not _finished(spec, recipe, cell, seed)
    ]
    todo.sort(key=lambda item: not item[0].is_teacher)  # teachers first: students may wait for them
    training_teachers = {cell.name for cell, _ in todo if cell.is_teacher}
    by_label = {_label(cell, seed): cell for cell, seed in todo}
    jobs = [_job(spec, recipe, cell, seed, training_teachers) for cell, seed in todo]
    wire = lambda job: _wire_teacher(spec, by_label[job.label], cells, job, progress)  # noqa: E731
    if spec.scheduler:
        from ..cluster import open_client
        from .cluster_runs import run_jobs_on_cluster

        client, cluster = open_client(spec.scheduler, spec.cluster, spec.jobs, train_slots=True)
        try:
            run_jobs_on_cluster(jobs, client, progress, prepare=wire)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        run_jobs(jobs, spec.jobs, progress, prepare=wire)
    results: dict[str, dict[int, dict]] = {}
    for seed in range(spec.seeds):
        for cell in cells:
            directory = (
                grid_run_dir(spec.dataset, f"teacher/{cell.model}", 0)
                if _reuses_teacher(cell, seed)
                else run_dir(spec, cell, seed)
            )
            results.setdefault(cell.name, {})[seed] = json.loads((directory / "summary.json").read_text())
    return results
