"""The grid's runs as dask tasks (``make cmkd SCHEDULER=...``): one training per task, on a worker that
declares one ``train`` slot (:mod:`pipeline.cluster`), so a SLURM job with two GPUs trains two cells at once
and never more.

The order rules are :func:`pipeline.experiments.parallel_runs.run_jobs`'s: a run starts once the runs it waits for
finished, ``prepare`` runs here first (the grid writes the store a student reads), a failure is named after
the others stop, and runs waiting for a failed one are not started. A run seeds itself and sets its own
threads, so its result does not depend on the worker it landed on (a test compares a LocalCluster grid with
the local-process one, value for value).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from ..cluster import TRAIN_RESOURCE, ClusterError
from .parallel_runs import LOG_FILE, RunJob, check_order, execute


def train_on_worker(job: RunJob) -> dict:
    """The task: one training, its printed lines into the run's log like a local child's."""
    log_path = job.run_dir / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return execute(job, progress=True)


def check_train_slots(client) -> None:
    """An existing scheduler's workers must declare the slot, else every task would wait forever."""
    workers = client.scheduler_info().get("workers", {})
    if workers and not any(TRAIN_RESOURCE in (w.get("resources") or {}) for w in workers.values()):
        raise ClusterError(
            f"none of the {len(workers)} dask workers declares the resource '{TRAIN_RESOURCE}': "
            f"start them with `dask worker ... --resources {TRAIN_RESOURCE}=1` (one per GPU)"
        )


def run_jobs_on_cluster(
    jobs: list[RunJob], client, progress: bool = True, prepare: Callable[[RunJob], RunJob] | None = None
) -> None:
    """Every job as a task holding one train slot, each after the runs it waits for; raises after all
    have stopped if any failed."""
    from distributed import wait

    check_order(jobs)
    check_train_slots(client)
    prepare = prepare or (lambda job: job)
    waiting, done, failures = list(jobs), set(), []
    running: dict = {}  # future -> its job
    failed: set[str] = set()
    started = time.time()
    while waiting or running:
        for job in [j for j in waiting if failed.intersection(j.after)]:
            waiting.remove(job)
            failed.add(job.label)
            failures.append(f"{job.label} (not started): waits for {sorted(failed.intersection(job.after))}")
        for job in [j for j in waiting if all(label in done for label in j.after)]:
            waiting.remove(job)
            try:
                job = prepare(job)
            except Exception as error:  # e.g. the store it reads could not be written
                failed.add(job.label)
                failures.append(f"{job.label} (not started): {type(error).__name__}: {error}")
                continue
            future = client.submit(
                train_on_worker,
                job,
                resources={TRAIN_RESOURCE: 1},
                pure=False,
                key=f"cmkd-run-{job.label}-{time.time_ns()}",
            )
            running[future] = job
            if progress:
                print(f"submitted {job.label} (log: {job.run_dir / LOG_FILE})")
        if not running:
            continue
        finished, _ = wait(list(running), return_when="FIRST_COMPLETED")
        for future in finished:
            job = running.pop(future)
            if future.status == "finished" and (Path(job.run_dir) / "summary.json").exists():
                done.add(job.label)
                if progress:
                    print(f"finished {job.label} ({time.time() - started:.0f} s in)")
            else:
                failed.add(job.label)
                why = future.exception() if future.status == "error" else future.status
                failures.append(f"{job.label}: {type(why).__name__}: {why} [log: {job.run_dir / LOG_FILE}]")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} run(s) failed: " + "; ".join(failures))
