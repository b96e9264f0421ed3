"""Entries `stage_one_scale` and `front_end_batched`: stage one's cost per clip must not grow with the
dataset, and what the batched front end saves on a CPU.

`stage_one_scale` computes the same few real clips inside a simulated 200,000-id manifest and inside
a 2,000-id one (every id a training clip, so the mixup partner pool is the whole manifest) with a
tiny random-init teacher and views with mixup, through the engine's own worker function
(:func:`pipeline.stage_one.compute.compute_chunk`) on one work unit; and it measures what submitting one
task costs the client (the pickled task: dask serialises a task's arguments this way).
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.testing import noise_and_tones, save_random_teacher, write_generated_clips, write_generated_manifest

from .harness import RATIO, BenchContext, Figure, Goal, Measured, median, paired_ratio, timed


@dataclass(frozen=True)
class ScaleParams:
    big_ids: int = 200_000
    small_ids: int = 2_000
    computed: int = 32  # real clips computed in both manifests: one work unit
    views: int = 4
    model: str = "efficientnet_tiny"
    n_mels: int = 64
    target_length: int = 400
    clip_seconds: float = 4.0
    num_classes: int = 50
    repeats: int = 11  # pairs: a shared machine's load moves single pairs by +-15 %
    batch_size: int = 40


SCALE_FULL = ScaleParams()
SCALE_QUICK = ScaleParams(big_ids=20_000, small_ids=200, computed=4, views=2, repeats=1, batch_size=12)


def run_scale(ctx: BenchContext, params: ScaleParams) -> Measured:
    from pipeline.augment import AugmentSettings
    from pipeline.stage_one import StageOneJob
    from pipeline.stage_one.compute import compute_chunk, worker_source
    from pipeline.stage_one.run import prepare

    root = ctx.folder("scale")
    wavs = write_generated_clips(root / "audio", params.computed, params.clip_seconds)
    teacher = root / "runs" / params.model
    save_random_teacher(teacher, params.model, params.num_classes, params.n_mels, params.target_length)
    augment = AugmentSettings(mixup=0.5, freqm=8, timem=20, time_shift=10)
    specs, first_task_s = {}, {}
    for label, ids in (("big", params.big_ids), ("small", params.small_ids)):
        ctx.log(f"  {ids:,}-id manifest")
        write_generated_manifest(root, label, wavs, params.num_classes, params.clip_seconds, total_ids=ids)
        job = StageOneJob(
            dataset=label,
            teacher=str(teacher),
            out=str(root / "stores" / f"{label}.zarr"),
            views=params.views,
            augment=augment,
            scheduler="inline",
            chunk_clips=params.computed,
            batch_size=params.batch_size,
            overwrite=True,
            manifests_root=str(root / "data_manifests"),
            device="cpu",
        )
        spec, _, _, _ = prepare(job)
        specs[label] = dataclasses.replace(spec, threads=ctx.threads)
        # the worker's one-off read of the manifest and partner pool, and its teacher load
        first_task_s[label] = timed(lambda spec=specs[label]: compute_chunk(spec, 0, 0, params.computed))[0]
    assert len(worker_source(specs["big"]).partners) == params.big_ids
    big, small = [], []
    for repeat in range(params.repeats):  # pairs, in alternating order
        order = (("big", big), ("small", small)) if repeat % 2 == 0 else (("small", small), ("big", big))
        for label, into in order:
            into.append(timed(lambda spec=specs[label]: compute_chunk(spec, 0, 0, params.computed))[0])
    ratio = paired_ratio(big, small)
    submit = {label: _submission_cost(spec, params.computed) for label, spec in specs.items()}
    ids = tuple(c.clip_id for c in worker_source(specs["big"]).manifest.clips)
    pool_in_task_bytes = len(pickle.dumps(ids))  # what a task would carry if the pool travelled with it
    figures = [
        Figure(
            f"time per computed clip, {params.big_ids:,}-id / {params.small_ids:,}-id manifest",
            ratio,
            RATIO,
            Goal("<=", 1.05),
        ),
        Figure("per-task submission cost, pickled task (200k-id manifest)", submit["big"]["seconds"] * 1e3, "ms"),
        Figure("pickled task size (200k-id manifest)", submit["big"]["bytes"], "bytes"),
    ]
    details = {
        "computed_clips": params.computed,
        "views": params.views,
        "ms_per_computed_clip_big": median(big) / params.computed * 1e3,
        "ms_per_computed_clip_small": median(small) / params.computed * 1e3,
        "first_task_s": first_task_s,
        "submission": submit,
        "partner_pool_pickled_bytes_if_carried_per_task": pool_in_task_bytes,
    }
    note = (
        f"The same {params.computed} generated {params.clip_seconds:g}-s WAVs computed as one work unit "
        f"(compute_chunk, the dask task body: decode, batched front end, {params.views} views with mixup 0.5 "
        f"drawn from the whole manifest as partner pool, random-init {params.model} teacher "
        f"{params.n_mels}x{params.target_length}, float16 store write with checksum) in a {params.big_ids:,}-id "
        f"and a {params.small_ids:,}-id manifest, {ctx.threads} torch threads, median of the per-pair ratios over "
        f"{params.repeats} interleaved pairs after one warm-up task each (that first task also reads the "
        f"manifest and partner pool once per worker process: {first_task_s['big']:.2f} s vs "
        f"{first_task_s['small']:.2f} s, in details). Submission cost: pickle.dumps of one task's arguments "
        f"(spec, chunk, start, stop), median of 200, {submit['big']['bytes']} bytes at {params.big_ids:,} ids and "
        f"{submit['small']['bytes']} at {params.small_ids:,}; the partner pool itself would pickle to "
        f"{pool_in_task_bytes / 1e6:.1f} MB per task if it travelled with the spec."
    )
    return Measured(figures, {"big_s": big, "small_s": small}, details, note)


def _submission_cost(spec, rows: int) -> dict:
    from pipeline.stage_one.compute import compute_chunk

    task = (compute_chunk, spec, 0, 0, rows)
    seconds = [timed(lambda: pickle.dumps(task))[0] for _ in range(200)]
    return {"seconds": median(seconds), "bytes": len(pickle.dumps(task))}


# -- front_end_batched -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontEndParams:
    clips: int = 16
    clip_seconds: float = 10.0
    n_mels: int = 128
    target_length: int = 1024
    views: int = 4
    repeats: int = 5
    threads: int = 1  # a dask worker's budget


FRONT_END_FULL = FrontEndParams()
FRONT_END_QUICK = FrontEndParams(clips=4, views=2, repeats=1)


def run_front_end(ctx: BenchContext, params: FrontEndParams) -> Measured:
    from pipeline.augment import View, apply_views, render_view, view_tensors
    from pipeline.config import FrontEndConfig
    from pipeline.features import wave_to_features
    from pipeline.stage_one.batches import CPU_FRONT_END_ROWS, front_end

    cfg = FrontEndConfig(n_mels=params.n_mels, target_length=params.target_length)
    rng = np.random.default_rng(0)
    waves = [noise_and_tones(params.clip_seconds, 16000, rng) for _ in range(params.clips)]
    # views without mixup (shift and masks only): the per-clip path renders each from the audio again
    views = [
        View(seed=0, view_index=k, time_shift=3 * k - 5, freq_masks=((10 + k, 12),), time_masks=((50 * k, 40),))
        for k in range(params.views)
    ]
    device = torch.device("cpu")

    def per_clip_clean():
        return [wave_to_features(w, cfg) for w in waves]

    def batched_clean():
        return front_end(waves, cfg, device)

    def per_clip_views():
        return [[wave_to_features(w, cfg)] + [render_view(w, None, v, cfg) for v in views] for w in waves]

    def batched_views():
        clean = front_end(waves, cfg, device)
        arrays = view_tensors([v for _ in waves for v in views])
        return clean, apply_views(
            clean.repeat_interleave(len(views), 0), arrays["time_shift"], arrays["freq_masks"], arrays["time_masks"]
        )

    torch.set_num_threads(params.threads)
    try:
        for fn in (per_clip_clean, batched_clean):
            fn()  # warm-up
        timings = {name: [] for name in ("per_clip", "batched", "per_clip_views", "batched_views")}
        for repeat in range(params.repeats):
            pairs = [
                ("per_clip", per_clip_clean),
                ("batched", batched_clean),
                ("per_clip_views", per_clip_views),
                ("batched_views", batched_views),
            ]
            for name, fn in pairs if repeat % 2 == 0 else pairs[::-1]:
                timings[name].append(timed(fn)[0])
        check = float((batched_clean() - torch.stack(per_clip_clean())).abs().max())
    finally:
        torch.set_num_threads(ctx.threads)
    speed_up = paired_ratio(timings["per_clip"], timings["batched"])
    views_speed_up = paired_ratio(timings["per_clip_views"], timings["batched_views"])
    figures = [
        Figure(
            f"front end per clip / batched, clean clips at {params.n_mels}x{params.target_length}, CPU", speed_up, RATIO
        ),
        Figure(
            f"same, clean + {params.views} views without mixup (batched: fbank once, views reuse it)",
            views_speed_up,
            RATIO,
        ),
    ]
    details = {
        "ms_per_clip_per_clip_path": median(timings["per_clip"]) / params.clips * 1e3,
        "ms_per_clip_batched": median(timings["batched"]) / params.clips * 1e3,
        "ms_per_clip_views_per_clip_path": median(timings["per_clip_views"]) / params.clips * 1e3,
        "ms_per_clip_views_batched": median(timings["batched_views"]) / params.clips * 1e3,
        "max_abs_difference": check,
        "rows_per_cpu_pass": CPU_FRONT_END_ROWS,
    }
    note = (
        f"{params.clips} generated {params.clip_seconds:g}-s clips (16 kHz) to normalised "
        f"{params.n_mels}x{params.target_length} features on the CPU with {params.threads} torch thread (a dask "
        "worker's budget). Per clip: pipeline.features.wave_to_features (torchaudio's Kaldi fbank) and, for "
        "views, augment.render_view per view; batched: pipeline.stage_one.batches.front_end (fbank_batch over "
        f"{CPU_FRONT_END_ROWS} rows per pass on a CPU) and apply_views on the clean features. Median of per-repeat "
        f"ratios over {params.repeats} interleaved repeats; the largest difference between the two paths' "
        f"features was {check:.2e}. On a GPU the batched path runs on the teacher's device; not measured here."
    )
    return Measured(figures, timings, details, note)
