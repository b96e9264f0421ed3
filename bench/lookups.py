"""Entry `logit_lookups`: an AudioSet-scale store read by DataLoader workers.

A 2,000,000 x 527 float16 store (~2.1 GB of logits) is written with the store's own writer, opened
with :meth:`LogitTable.open`, shared (:meth:`LogitTable.share`: .npy files, memory-mapped), and read
in random batches of 32 rows by two forked DataLoader workers. Reported: open and share times, rows
per second, and each worker's memory, which must not hold a private copy of the table.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.testing import write_simulated_store

from .harness import RATIO, BenchContext, Figure, Goal, Measured, timed

MB = 2**20


@dataclass(frozen=True)
class LookupParams:
    rows: int = 2_000_000
    classes: int = 527
    chunk_clips: int = 100_000  # big chunks: 20 writes of ~100 MB instead of 2,000 of 1 MB
    batches: int = 2000
    batch_rows: int = 32
    workers: int = 2


LOOKUP_FULL = LookupParams()
LOOKUP_QUICK = LookupParams(rows=100_000, chunk_clips=25_000, batches=400)


class RandomRowBatches(Dataset):
    """Item i = logits of batch_rows random rows (seeded by i), tagged with the worker's pid."""

    def __init__(self, table, batches: int, batch_rows: int):
        self.table, self.batches, self.batch_rows = table, batches, batch_rows

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int):
        rows = np.random.default_rng([17, index]).integers(0, len(self.table), self.batch_rows)
        return torch.from_numpy(self.table.logits_for(rows)), os.getpid()


def process_memory(pid: int) -> dict[str, float]:
    """MB of one process: RSS, PSS, USS (psutil) and its private dirty memory (Linux smaps_rollup).

    USS also counts clean page-cache pages of the shared .npy files that only this process maps;
    private dirty pages are memory the process truly owns: a copy of the table would land there.
    """
    info = psutil.Process(pid).memory_full_info()
    memory = {
        "rss_mb": info.rss / MB,
        "pss_mb": getattr(info, "pss", float("nan")) / MB,
        "uss_mb": info.uss / MB,
        "private_dirty_mb": float("nan"),
    }
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        for line in rollup.read_text().splitlines():
            if line.startswith("Private_Dirty:"):
                memory["private_dirty_mb"] = int(line.split()[1]) * 1024 / MB
    return memory


def _write_store(path: Path, params: LookupParams) -> Path:
    clip_ids = [f"Y{i:010d}" for i in range(params.rows)]  # YouTube-id-like strings
    rng = np.random.default_rng(0)

    def chunk(start: int, stop: int) -> np.ndarray:
        # plain normals: lookups do not care about realism, and 2M realistic rows would take minutes
        return rng.standard_normal((stop - start, params.classes), dtype=np.float32) * 2.0 - 4.0

    return write_simulated_store(path, clip_ids, params.classes, chunk, chunk_clips=params.chunk_clips)


def run(ctx: BenchContext, params: LookupParams) -> Measured:
    from pipeline.store import LogitTable

    folder = ctx.folder("logit_lookups")
    me = psutil.Process()
    write_s, path = timed(lambda: _write_store(folder / "audioset.zarr", params))
    before_mb = me.memory_info().rss / MB
    open_s, table = timed(lambda: LogitTable.open(path))
    opened_mb = me.memory_info().rss / MB
    share_s, _ = timed(lambda: table.share(cache_dir=folder / "shared"))
    shared_mb = me.memory_info().rss / MB
    table_mb = len(table) * table.num_classes * np.dtype(table.layout.dtype).itemsize / MB
    pickled_mb = len(pickle.dumps(table)) / MB

    dataset = RandomRowBatches(table, params.batches, params.batch_rows)
    in_process_s = timed(lambda: [dataset[i] for i in range(params.batches)])[0]
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=params.workers,
        multiprocessing_context="fork",
        persistent_workers=True,
        prefetch_factor=4,
    )
    iterator = iter(loader)
    pids = {next(iterator)[1]}  # the first batch pays the fork; time the steady state after it
    started = time.perf_counter()
    for _, pid in iterator:
        pids.add(pid)
    loader_s = time.perf_counter() - started
    workers = {str(pid): process_memory(pid) for pid in sorted(pids)}
    del iterator, loader
    rows_per_s = (params.batches - 1) * params.batch_rows / loader_s
    worst = {key: max(w[key] for w in workers.values()) for key in ("rss_mb", "pss_mb", "uss_mb", "private_dirty_mb")}
    figures = [
        Figure(f"random rows/s, batches of {params.batch_rows}, {params.workers} workers", rows_per_s, "rows/s"),
        Figure(
            "random rows/s in the main process (no workers)",
            params.batches * params.batch_rows / in_process_s,
            "rows/s",
        ),
        Figure("worker USS (max over workers)", worst["uss_mb"], "MB"),
        Figure("worker PSS (max over workers)", worst["pss_mb"], "MB"),
        Figure("worker RSS (max over workers)", worst["rss_mb"], "MB"),
        # at quick sizes the interpreter's own memory outweighs a ~100 MB table: no verdict there
        Figure(
            "worker private dirty memory / table size",
            worst["private_dirty_mb"] / table_mb,
            RATIO,
            None if ctx.quick else Goal("<=", 0.25),
        ),
    ]
    details = {
        "rows": params.rows,
        "classes": params.classes,
        "table_mb": table_mb,
        "write_s": write_s,
        "open_s": open_s,
        "share_s": share_s,
        "main_rss_mb": {"before_open": before_mb, "after_open": opened_mb, "after_share": shared_mb},
        "pickled_table_mb": pickled_mb,
        "workers": workers,
        "loader_s": loader_s,
        "in_process_s": in_process_s,
    }
    note = (
        f"{params.rows:,} x {params.classes} float16 store ({table_mb:,.0f} MB of logits) written with "
        f"create_store + write_chunk in chunks of {params.chunk_clips:,} rows ({write_s:.0f} s). "
        f"LogitTable.open took {open_s:.1f} s and share() {share_s:.1f} s (main process RSS {opened_mb:,.0f} MB "
        f"after open, {shared_mb:,.0f} MB after share). {params.workers} forked DataLoader workers then drew "
        f"{params.batches} batches of {params.batch_rows} random rows (logits_for, float32 out), timed after "
        "the first batch; the gap to the in-process rate is the DataLoader's per-batch inter-process "
        "transfer, which a real loader pays once per batch of audio anyway. Worker memory is read with "
        "psutil memory_full_info while the workers are alive: RSS counts every page of the memory-mapped "
        ".npy file a worker has mapped (the kernel maps neighbours of each touched page too), PSS splits "
        "those shared page-cache pages between the processes mapping them, USS is what only this worker "
        "maps; Private_Dirty (/proc/<pid>/smaps_rollup) is memory a worker "
        "owns, where a private copy would show up; it is compared with the table size (goal at full size: "
        "a quarter at most; a copy would be >= 1; quick mode reports it without a verdict). A pickled "
        f"shared table (what a spawned worker receives) is {pickled_mb:.0f} MB: file names plus the clip-id "
        "index, not the logits."
    )
    return Measured(
        figures,
        {
            "loader_s": [loader_s],
            "in_process_s": [in_process_s],
            "open_s": [open_s],
            "share_s": [share_s],
            "write_s": [write_s],
        },
        details,
        note,
    )
