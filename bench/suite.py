"""The list of benchmark entries and :func:`run_bench`, which runs them and writes the result files."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import audioset_io, inference, io, lookups, models, scale, sharing, stage_one, stage_two, store
from .harness import (
    BenchContext,
    EntryResult,
    Measured,
    entry_params,
    load_average,
    machine_info,
    read_previous,
    results_document,
    utc_now,
    write_results,
)


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    run: Callable[[BenchContext, Any], Measured]
    full: Any  # the entry's parameter dataclass at benchmark size
    quick: Any  # ... and at smoke-run size
    fresh_process: bool = False  # run in a newly spawned interpreter (memory figures of a clean process)


ENTRIES = (
    Entry("models", "training and inference clips/s per model", models.run, models.FULL, models.QUICK),
    Entry(
        "inference_cost",
        "student vs teacher at inference: parameters, MACs, latency and throughput, PyTorch and onnxruntime",
        inference.run,
        inference.FULL,
        inference.QUICK,
    ),
    Entry(
        "stage_one_overhead",
        "stage one wall time / bare teacher forward",
        stage_one.run_overhead,
        stage_one.OVERHEAD_FULL,
        stage_one.OVERHEAD_QUICK,
    ),
    Entry(
        "store_bytes",
        "bytes on disk per clip-view / (2 x classes), float16 with views",
        store.run_store_bytes,
        store.STORE_BYTES_FULL,
        store.STORE_BYTES_QUICK,
    ),
    Entry(
        "dask_vs_inline",
        "stage one throughput, dask LocalCluster / in-process",
        stage_one.run_dask,
        stage_one.DASK_FULL,
        stage_one.DASK_QUICK,
    ),
    Entry(
        "stage_one_scale",
        "stage one time per computed clip, 200k-id / 2k-id manifest; per-task submission",
        scale.run_scale,
        scale.SCALE_FULL,
        scale.SCALE_QUICK,
    ),
    Entry(
        "front_end_batched",
        "batched front end / per-clip front end on the CPU",
        scale.run_front_end,
        scale.FRONT_END_FULL,
        scale.FRONT_END_QUICK,
    ),
    Entry(
        "topk_error", "KD loss error of TOPK=20 against dense logits", store.run_topk, store.TOPK_FULL, store.TOPK_QUICK
    ),
    Entry(
        "cached_kd_step",
        "cached-KD training step / plain supervised step",
        stage_two.run_cached_step,
        stage_two.CACHED_FULL,
        stage_two.CACHED_QUICK,
    ),
    Entry(
        "online_vs_cached",
        "online-teacher KD epoch vs cached-KD epoch (AST -> EfficientNet)",
        stage_two.run_online,
        stage_two.ONLINE_FULL,
        stage_two.ONLINE_QUICK,
    ),
    # forked workers inherit the parent's pages: measured in a fresh process, so that is a process that
    # opened the table, not one still holding what the paper-size models of earlier entries left behind
    Entry(
        "logit_lookups",
        "AudioSet-scale store: lookups/s and memory per DataLoader worker",
        lookups.run,
        lookups.LOOKUP_FULL,
        lookups.LOOKUP_QUICK,
        fresh_process=True,
    ),
    Entry("packed_vs_wav", "packed HDF5 vs per-file WAV reading", io.run, io.PACKED_FULL, io.PACKED_QUICK),
    Entry(
        "audioset_decode",
        "decode clips/s per core: mp3-in-HDF5 vs packed int16 vs WAV",
        audioset_io.run,
        audioset_io.DECODE_FULL,
        audioset_io.DECODE_QUICK,
    ),
    Entry(
        "verify_throughput",
        "full store verification, MB/s",
        sharing.run_verify,
        sharing.VERIFY_FULL,
        sharing.VERIFY_QUICK,
    ),
    Entry(
        "verified_read_cost",
        "verifying a store on open / one cached-KD epoch",
        sharing.run_verified_read,
        sharing.VERIFIED_READ_FULL,
        sharing.VERIFIED_READ_QUICK,
    ),
    Entry(
        "fingerprint_cost",
        "audio fingerprint per clip while validating a manifest",
        sharing.run_fingerprint,
        sharing.FINGERPRINT_FULL,
        sharing.FINGERPRINT_QUICK,
    ),
)


def entry_names() -> list[str]:
    return [entry.name for entry in ENTRIES]


def select_entries(only: list[str] | None) -> list[Entry]:
    if not only:
        return list(ENTRIES)
    unknown = [name for name in only if name not in entry_names()]
    if unknown:
        raise ValueError(
            f"unknown bench entr{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
            f"choose from: {', '.join(entry_names())}"
        )
    return [entry for entry in ENTRIES if entry.name in only]


def run_bench(
    only: list[str] | None = None,
    quick: bool = False,
    out: str | os.PathLike = "bench/results.json",
    threads: int = 2,
    scratch: str | os.PathLike | None = None,
    overrides: dict[str, dict] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the chosen entries (all by default) and write `out` and its .md table; returns the document.

    Each entry works in its own folder under `scratch` (default: bench/tmp beside `out`), deleted
    when it ends. An entry that raises is recorded with its error and the run goes on. With `only`,
    entries of an existing results file that were not rerun are kept (each entry carries its date).
    `overrides` maps an entry name to parameter values (tests use it to shrink sizes further).
    """
    import torch

    chosen = select_entries(only)
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(entry_names()))
    if unknown:
        raise ValueError(f"overrides for unknown entries {unknown}")
    torch.set_num_threads(threads)
    scratch_root = Path(scratch) if scratch else Path(out).parent / "tmp"
    machine = machine_info(threads)
    started = time.perf_counter()
    results = []
    for entry in chosen:
        params = entry_params(entry.full, entry.quick, quick, overrides.get(entry.name))
        log(f"[bench] {entry.name}: {entry.title}")
        ctx = BenchContext(quick=quick, scratch=scratch_root / entry.name, threads=threads, log=log)
        entry_started, load_before = time.perf_counter(), load_average()
        error = ""
        try:
            measured = _run_fresh(entry, ctx, params) if entry.fresh_process else entry.run(ctx, params)
        except Exception:  # one broken entry must not cost the others' results
            error = traceback.format_exc(limit=6)
            measured = Measured([])
            log(f"[bench] {entry.name} failed:\n{error}")
        finally:
            torch.set_num_threads(threads)
            shutil.rmtree(ctx.scratch, ignore_errors=True)
            gc.collect()
        result = EntryResult(
            entry.name,
            entry.title,
            measured,
            time.perf_counter() - entry_started,
            utc_now(),
            dataclasses.asdict(params),
            error,
            (load_before, load_average()),
        )
        results.append(result)
        log(f"[bench] {entry.name}: {result.seconds:.0f} s, ok={result.ok}")
    _remove_if_empty(scratch_root)
    run = {
        "quick": quick,
        "only": [e.name for e in chosen] if only else None,
        "threads": threads,
        "total_seconds": round(time.perf_counter() - started, 1),
        "finished": utc_now(),
    }
    document = results_document(results, machine, run, entry_names(), read_previous(out) if only else None)
    write_results(document, out)
    return document


def _run_fresh(entry: Entry, ctx: BenchContext, params) -> Measured:
    """entry.run in a spawned interpreter (same environment, same thread budget); errors come back raised."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_by_name, entry.name, ctx.quick, str(ctx.scratch), ctx.threads, params).result()


def _run_by_name(name: str, quick: bool, scratch: str, threads: int, params) -> Measured:
    import torch

    torch.set_num_threads(threads)
    entry = next(e for e in ENTRIES if e.name == name)
    return entry.run(BenchContext(quick=quick, scratch=Path(scratch), threads=threads), params)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # absent, or another run's files are still there
