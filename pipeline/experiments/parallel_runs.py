"""Independent training runs side by side, each in its own spawned process (the grid's cells).

Why: on a CPU a tiny model's run keeps one core busy with its math thread (``threads=1``) while its
data worker idles most of the time, so two runs side by side on the demo's two cores get through
more work than one: measured in `make demo`'s logs, the demo CNN trains at about 55 clips/s alone
and 41 beside an AST run that itself keeps 50-60. Each run seeds itself (:mod:`pipeline.seeding`) and
sets its own threads, so a run's result does not depend on how many run beside it.

A run may wait for others (``after``: a student for the teacher whose store it reads); it starts as
soon as those finished, so a student that needs no teacher fills a core while a teacher still
trains. ``prepare`` runs in the parent right before a run starts (the grid writes the store the
student reads there).

A child writes everything it prints to ``<run>/train.log``; the parent shows one progress bar over
the runs and a line per finished run. A failed run does not stop the others: the parent waits for
them (nothing finished is lost; runs that wait for the failed one are not started) and then raises,
naming the run and its log.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import Config

KINDS = ("train", "crossfit", "student")  # supervised run, k cross-fitted members, stage-two student
LOG_FILE = "train.log"


@dataclass(frozen=True)
class RunJob:
    label: str  # how progress lines name it, e.g. "short/ast_to_cnn seed 1"
    kind: str  # one of KINDS
    dataset: str
    config: Config
    run: str  # run name under runs/<dataset>/
    run_dir: Path
    fold: int | None = None
    crossfit: int = 0
    after: tuple[str, ...] = ()  # labels of runs that must finish first
    resume: bool = False  # continue a killed run from its last epoch (the run checks that its recipe is the same)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.label}: run kind must be one of {KINDS}, got {self.kind!r}")


def execute(job: RunJob, progress: bool = True) -> dict:
    """Run one job in this process; returns its summary."""
    from ..stage_two.run import train_student
    from ..training import run_training
    from ..training.crossfit import run_crossfit

    if job.kind == "crossfit":
        return run_crossfit(
            job.dataset, job.config, job.run, job.crossfit, fold=job.fold, resume=job.resume, progress=progress
        )
    if job.kind == "train":
        return run_training(job.dataset, job.config, job.run, fold=job.fold, resume=job.resume, progress=progress)
    return train_student(job.dataset, job.config, job.run, fold=job.fold, resume=job.resume, progress=progress)


def exit_with_parent(parent_pid: int, poll_s: float = 2.0) -> None:
    """Stop this process when ``parent_pid`` is gone. Why: a grid killed with ``kill`` (SIGTERM or
    SIGKILL reach the parent alone) would otherwise leave its runs training, orphaned, into the run
    directories that a restarted grid resumes: two processes writing one run."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)  # its DataLoader workers notice their parent is gone and stop too

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _child(job: RunJob, log_path: str, parent_pid: int) -> None:
    """The spawned process: stdout and stderr (its DataLoader workers' too) go to the run's log, with
    the per-epoch lines of a normal run; it stops when the grid that started it is gone."""
    exit_with_parent(parent_pid)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            execute(job, progress=True)  # into a file, bars redraw once a minute (pipeline.progress)
        except BaseException as error:  # the parent reads the last line of the log
            traceback.print_exc()
            print(f"{type(error).__name__}: {error}")
            log.flush()
            os._exit(1)


def _last_line(path: Path) -> str:
    if not path.exists():
        return "(no log)"
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(empty log)"


def check_order(jobs: list[RunJob]) -> None:
    seen = set()
    for job in jobs:
        missing = [label for label in job.after if label not in seen]
        if missing:
            raise ValueError(f"{job.label} waits for {missing}, which are not listed before it")
        seen.add(job.label)


def run_jobs(
    jobs: list[RunJob], parallel: int = 1, progress: bool = True, prepare: Callable[[RunJob], RunJob] | None = None
) -> None:
    """Run every job, up to ``parallel`` at once, each after the runs it waits for (listed before
    it); ``parallel=1`` runs them here, in order, with their own progress bars. Raises after all
    have stopped if any failed."""
    if parallel < 1:
        raise ValueError(f"parallel runs must be at least 1, got {parallel}")
    check_order(jobs)
    prepare = prepare or (lambda job: job)
    if parallel == 1:
        started = time.time()
        for job in jobs:
            job = prepare(job)
            print(f"\n=== {job.label} ({time.time() - started:.0f} s in) ===")
            execute(job, progress=progress)
        return
    from tqdm import tqdm

    context = multiprocessing.get_context("spawn")  # no inherited torch threads or open stores
    waiting, done, failures = list(jobs), set(), []
    running: dict[multiprocessing.context.SpawnProcess, tuple[RunJob, Path, float]] = {}  # -> (job, log, start)
    failed: set[str] = set()  # labels
    bar = tqdm(total=len(jobs), desc=f"runs ({parallel} at once)", unit="run", disable=not progress)
    while waiting or running:
        for job in [j for j in waiting if failed.intersection(j.after)]:
            waiting.remove(job)  # it waits for a run that failed: never started
            failed.add(job.label)
            failures.append(f"{job.label} (not started): waits for {sorted(failed.intersection(job.after))}")
            bar.update(1)
        ready = [j for j in waiting if all(label in done for label in j.after)]
        while ready and len(running) < parallel:
            job = ready.pop(0)
            waiting.remove(job)
            try:
                job = prepare(job)
            except Exception as error:  # e.g. the store it reads could not be written
                failed.add(job.label)
                failures.append(f"{job.label} (not started): {type(error).__name__}: {error}")
                bar.update(1)
                continue
            log = job.run_dir / LOG_FILE
            process = context.Process(target=_child, args=(job, str(log), os.getpid()), name=job.label)
            process.start()
            running[process] = (job, log, time.time())
            bar.write(f"started {job.label} (log: {log})")
        for process in [p for p in running if not p.is_alive()]:
            process.join()
            job, log, began = running.pop(process)
            summary_file = job.run_dir / "summary.json"
            if process.exitcode == 0 and summary_file.exists():
                done.add(job.label)
                value = json.loads(summary_file.read_text()).get("map")
                bar.write(
                    f"finished {job.label} in {time.time() - began:.0f} s"
                    + (f": eval mAP {value:.4f}" if isinstance(value, float) else "")
                )
            else:
                failed.add(job.label)
                failures.append(f"{job.label} (exit {process.exitcode}): {_last_line(log)} [log: {log}]")
            bar.update(1)
        time.sleep(0.5)
    bar.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} run(s) failed: " + "; ".join(failures))
