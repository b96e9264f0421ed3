"""Which dask cluster a stage runs on: a local one, an existing scheduler, or SLURM jobs (dask-jobqueue).

``SCHEDULER=slurm`` starts a :class:`dask_jobqueue.SLURMCluster` whose batch jobs each run ``processes``
dask workers (one per GPU when the job has GPUs), each worker declaring the resource ``train=1`` so that a
grid cell submitted with ``resources={"train": 1}`` holds one worker for the whole training. The cluster
is scaled to ``jobs`` batch jobs and closed (its jobs cancelled) when the stage ends.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

SCHEDULERS_STARTED_HERE = ("", "local", "slurm")  # else: "inline" (stage one only) or a scheduler address
TRAIN_RESOURCE = "train"  # one per worker: one training at a time on it


class ClusterError(RuntimeError):
    """The cluster did not come up (no SLURM, a refused job, no worker in time); the message says which."""


@dataclass(frozen=True)
class ClusterResources:
    """What each SLURM batch job asks for (make CLUSTER_* variables), and how many jobs to start."""

    jobs: int = 1  # batch jobs to scale to
    cores: int = 1  # CPU cores per job
    memory: str = "4GB"  # per job
    gpus: int = 0  # per job (--gres=gpu:N); one dask worker per GPU
    walltime: str = "01:00:00"
    queue: str = ""  # the partition (-p)
    account: str = ""  # -A
    host: str = ""  # address the scheduler listens on (default: dask-jobqueue's, this host's)
    interface: str = ""  # or a network interface for the scheduler and workers (ib0, eth0)
    worker_timeout_s: float = 600.0  # no worker joined by then: fail with squeue's view instead of waiting

    @property
    def processes(self) -> int:
        return max(self.gpus, 1)


def start_slurm_cluster(resources: ClusterResources, log_dir: str = "logs/slurm"):
    """A scaled SLURMCluster; workers run this interpreter in this folder, so they import the same pipeline."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ClusterError("SCHEDULER=slurm needs dask-jobqueue: pip install -e '.[slurm]'") from None
    if resources.cores < resources.processes:
        raise ClusterError(f"CLUSTER_CORES={resources.cores} is fewer than the {resources.processes} workers per job")
    os.makedirs(log_dir, exist_ok=True)  # the job scripts' output (ignored by git)
    # the workers import this very pipeline (its package folder) and see this working folder's files
    code = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    extra = [f"--gres=gpu:{resources.gpus}"] if resources.gpus else []
    options: dict[str, Any] = dict(  # SLURMCluster's keyword arguments, each of its own type
        cores=resources.cores,
        processes=resources.processes,
        memory=resources.memory,
        walltime=resources.walltime,
        python=sys.executable,
        log_directory=log_dir,
        job_extra_directives=extra,
        job_script_prologue=[
            f"cd {os.getcwd()}",
            f"export PYTHONPATH={code}:{os.getcwd()}",
            # a daemonic worker may not start processes (a training's DataLoader)
            "export DASK_DISTRIBUTED__WORKER__DAEMON=False",
        ],
        worker_extra_args=["--resources", f"{TRAIN_RESOURCE}=1"],
    )
    if resources.queue:
        options["queue"] = resources.queue
    if resources.account:
        options["account"] = resources.account
    if resources.interface:
        options["interface"] = resources.interface
    if resources.host:
        options["scheduler_options"] = {"host": resources.host}
    try:
        cluster = SLURMCluster(**options)
    except Exception as error:  # sbatch not found and the like
        raise ClusterError(f"SLURMCluster did not start: {type(error).__name__}: {error}") from None
    cluster.scale(jobs=resources.jobs)
    return cluster


def wait_for_workers(client, cluster, timeout_s: float) -> None:
    """Bounded: a job that SLURM never starts (wrong partition, no free node) fails here, saying so."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        state = ""
        if cluster is not None and hasattr(cluster, "job_script"):
            import subprocess

            state = subprocess.run(["squeue", "--me"], capture_output=True, text=True, timeout=30).stdout
        raise ClusterError(f"no dask worker joined within {timeout_s:.0f} s; squeue says:\n{state}") from None


def local_cluster(workers: int, train_slots: bool = False):
    """A LocalCluster of ``workers`` processes x 1 thread each, so torch intra-op threads x workers never
    oversubscribe the cores; ``train_slots``: each worker declares ``train=1`` (the grid's cells).

    dask exports MALLOC_TRIM_THRESHOLD_ to its workers; setting it freezes glibc's mmap threshold at
    128 KiB, so every activation tensor is mmapped and page-faulted afresh (stage one ran ~2.5x slower
    per chunk, `make bench` dask_vs_inline). The workers get dask's other settings unchanged.
    """
    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # a daemonic worker may not start processes: a training's DataLoader workers need that
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, "distributed.worker.daemon": False}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
            resources={TRAIN_RESOURCE: 1} if train_slots else None,
        )


def open_client(scheduler: str, resources: ClusterResources, local_workers: int, train_slots: bool = False):
    """(client, cluster or None) for SCHEDULER: "" or "local" a LocalCluster of ``local_workers`` processes,
    "slurm" SLURM jobs, anything else an existing scheduler's address. The caller closes both."""
    from distributed import Client

    cluster = None
    if scheduler == "slurm":
        cluster = start_slurm_cluster(resources)
        client = Client(cluster)
        wait_for_workers(client, cluster, resources.worker_timeout_s)
    elif scheduler in ("", "local"):
        cluster = local_cluster(local_workers, train_slots)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    return client, cluster
