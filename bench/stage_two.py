"""Entries `cached_kd_step` and `online_vs_cached`: what cached teacher logits cost a training step,
and how much of an online teacher's cost they remove.

Every side runs the real stage-two code: items of :class:`pipeline.training.dataset.ClipDataset` (audio read,
the clip's view, features and, for cached KD, the store lookup of
:meth:`pipeline.training.kd_source.StoreRows.read` against a real :class:`pipeline.store.LogitTable`),
collated as the DataLoader collates them, then :func:`pipeline.training.loop.train_step` (the loop's
own step: forward, KD targets, CMKD loss, backward, Adam). Data loading runs inline inside the timed
step (the DataLoader's workers would overlap it in a real run), so every side pays for the same
audio and features and the cached side additionally for its lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.testing import simulated_logits, write_generated_clips, write_generated_manifest, write_simulated_store

from .harness import RATIO, BenchContext, Figure, Goal, Measured, interleaved, median, paired_ratio, repeat_timed


@dataclass
class BenchData:
    """A generated training set, its stage-one store, and the datasets stage two builds from them."""

    plain: object  # pipeline.training.dataset.ClipDataset without KD
    cached: object  # the same clips with the store's rows (KD=clean)
    table: object  # pipeline.store.LogitTable

    def batch(self, indices, kd: bool) -> dict:
        from torch.utils.data import default_collate

        dataset = self.cached if kd else self.plain
        return default_collate([dataset[int(i)] for i in indices])


def bench_data(
    ctx: BenchContext, name: str, clips: int, classes: int, n_mels: int, target_length: int, table_rows: int = 0
) -> BenchData:
    """`clips` generated WAVs exactly target_length frames long, a manifest over them and a complete
    float16 store of simulated logits, opened and joined as stage two opens and joins it. The store
    holds `table_rows` rows (at least the clips), the manifest's clips at random rows among them."""
    from pipeline.config import FrontEndConfig
    from pipeline.features import samples_for_frames
    from pipeline.manifests import load_manifest
    from pipeline.store import LogitTable
    from pipeline.training.dataset import ClipDataset
    from pipeline.training.kd_source import StoreRows

    root = Path(ctx.folder(name))
    front_end = FrontEndConfig(n_mels=n_mels, target_length=target_length)
    seconds = samples_for_frames(target_length, front_end) / front_end.sample_rate
    wavs = write_generated_clips(root / "audio", clips, seconds, front_end.sample_rate)
    manifest = load_manifest(write_generated_manifest(root, name, wavs, classes, seconds, front_end.sample_rate))
    ids = [c.clip_id for c in manifest.clips]
    stored = [f"other{i:07d}" for i in range(max(table_rows, len(ids)))]
    for clip_id, row in zip(ids, np.random.default_rng(1).choice(len(stored), size=len(ids), replace=False)):
        stored[row] = clip_id
    logits = simulated_logits(len(stored), classes, seed=5)
    table = LogitTable.open(write_simulated_store(root / "teacher.zarr", stored, classes, lambda a, b: logits[a:b]))
    rows = np.where(table.usable(table.rows(ids)), table.rows(ids), -1)
    return BenchData(
        ClipDataset(manifest, manifest.clips, front_end),
        ClipDataset(manifest, manifest.clips, front_end, kd=StoreRows("clean", table, rows)),
        table,
    )


def kd_source(table_or_teacher, kd_loss: str, kd_lambda: float = 0.5):
    """Stage two's KDSource over a LogitTable's rows (the cached side) or a frozen model (online)."""
    from pipeline.training.kd_source import KDSource
    from pipeline.training.losses import KDLoss

    loss = KDLoss(kd_loss, kd_lambda=kd_lambda)
    if isinstance(table_or_teacher, torch.nn.Module):
        return KDSource("online", loss, online_teacher=table_or_teacher)
    return KDSource("clean", loss, store=table_or_teacher)


class Student:
    """A student, its optimiser and the loop's step function."""

    def __init__(self, model_name: str, num_classes: int, n_mels: int, target_length: int):
        from pipeline.models import create_model

        torch.manual_seed(0)
        self.model = create_model(model_name, num_classes=num_classes, n_mels=n_mels, target_length=target_length)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=False)

    def step(self, batch: dict, kd=None) -> None:
        from pipeline.training.loop import train_step

        train_step(self.model, self.optimizer, self.scaler, batch, kd, single_label=False)


# -- cached_kd_step ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedStepParams:
    model: str = "efficientnet_b0"
    n_mels: int = 64
    target_length: int = 400
    batch: int = 8
    classes: int = 527
    table_rows: int = 2000
    repeats: int = 12
    warmup: int = 2
    kd_loss: str = "kl"


CACHED_FULL = CachedStepParams()
CACHED_QUICK = CachedStepParams(model="efficientnet_tiny", batch=4, table_rows=200, repeats=3, warmup=1)


def run_cached_step(ctx: BenchContext, params: CachedStepParams) -> Measured:
    data = bench_data(
        ctx, "cached_kd_step", params.batch, params.classes, params.n_mels, params.target_length, params.table_rows
    )
    picked = range(params.batch)
    student = Student(params.model, params.classes, params.n_mels, params.target_length)
    kd = kd_source(data.cached.kd, params.kd_loss)

    seconds = interleaved(
        {
            "cached": lambda: student.step(data.batch(picked, kd=True), kd),
            "plain": lambda: student.step(data.batch(picked, kd=False)),
        },
        params.repeats,
        params.warmup,
    )
    from pipeline.views import IDENTITY

    lookup = repeat_timed(lambda: [data.cached.kd.read(i, 1, lambda: IDENTITY) for i in picked], repeats=50, warmup=5)
    ratio = paired_ratio(seconds["cached"], seconds["plain"])
    details = {
        "plain_step_s": median(seconds["plain"]),
        "cached_step_s": median(seconds["cached"]),
        "lookup_ms": 1000 * median(lookup),
        "table_rows": params.table_rows,
    }
    note = (
        f"{params.model} student at {params.n_mels}x{params.target_length}, batch {params.batch}, "
        f"{params.classes} classes, {torch.get_num_threads()} threads. Plain step: {params.batch} "
        "ClipDataset items (WAV read, features) collated, then the training loop's own train_step "
        "(forward, BCE task loss, backward, Adam). Cached step: the same ClipDataset items with KD=clean, "
        f"each looking its teacher logits up in a {params.table_rows}-row float16 LogitTable "
        "(StoreRows.read), then train_step with the KD targets (kd_targets, "
        f"{params.kd_loss}) and lambda 0.5. Data loading is inline and common to both sides; median of "
        f"{params.repeats} interleaved pairs after {params.warmup} warm-up pairs. The store lookups of one "
        f"batch alone take {1000 * median(lookup):.2f} ms."
    )
    return Measured(
        [Figure("cached-KD step / plain supervised step", ratio, RATIO, Goal("<=", 1.03))],
        {f"{k}_step_s": v for k, v in seconds.items()} | {"lookup_s": lookup},
        details,
        note,
    )


# -- online_vs_cached ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineParams:
    teacher: str = "ast_base"
    student: str = "efficientnet_b2"
    n_mels: int = 128
    target_length: int = 1024
    clips: int = 8
    batch: int = 4
    repeats: int = 2
    classes: int = 527
    kd_loss: str = "kl"


ONLINE_FULL = OnlineParams()
ONLINE_QUICK = OnlineParams(
    teacher="ast_tiny", student="efficientnet_tiny", n_mels=64, target_length=400, clips=4, batch=2, repeats=1
)


def run_online(ctx: BenchContext, params: OnlineParams) -> Measured:
    from pipeline.models import create_model

    data = bench_data(ctx, "online_vs_cached", params.clips, params.classes, params.n_mels, params.target_length)
    batches = [
        list(range(start, min(start + params.batch, params.clips))) for start in range(0, params.clips, params.batch)
    ]
    student = Student(params.student, params.classes, params.n_mels, params.target_length)
    teacher = create_model(
        params.teacher, num_classes=params.classes, n_mels=params.n_mels, target_length=params.target_length
    ).eval()
    teacher.requires_grad_(False)
    cached_kd, online_kd = kd_source(data.cached.kd, params.kd_loss), kd_source(teacher, params.kd_loss)

    def plain(chosen=batches):
        for indices in chosen:
            student.step(data.batch(indices, kd=False))

    def cached(chosen=batches):
        for indices in chosen:
            student.step(data.batch(indices, kd=True), cached_kd)

    def online(chosen=batches):
        for indices in chosen:
            student.step(data.batch(indices, kd=False), online_kd)

    for epoch in (plain, cached, online):  # warm-up: one batch each
        epoch(batches[:1])
    seconds = interleaved({"plain": plain, "cached": cached, "online": online}, params.repeats, warmup=0)
    removed = [1.0 - (c - p) / (o - p) for p, c, o in zip(seconds["plain"], seconds["cached"], seconds["online"])]
    saved = [(o - c) / o for c, o in zip(seconds["cached"], seconds["online"])]
    figures = [
        Figure(
            "teacher cost removed by the cache, 1 - (cached - plain) / (online - plain)",
            median(removed),
            "fraction",
            Goal(">=", 0.90),
        ),
        Figure("online-KD epoch / cached-KD epoch", paired_ratio(seconds["online"], seconds["cached"]), RATIO),
        Figure("epoch time saved, (online - cached) / online", median(saved), "fraction"),
    ]
    details = {k: median(v) for k, v in seconds.items()} | {"clips": params.clips, "batch": params.batch}
    note = (
        f"{params.teacher} teacher -> {params.student} student at {params.n_mels}x{params.target_length}, "
        f"{params.clips} clips in batches of {params.batch}, {params.classes} classes, "
        f"{torch.get_num_threads()} threads. An epoch is every batch's ClipDataset items (WAV read, "
        "features), collated, then the training loop's train_step; `online` runs the frozen random-init "
        "teacher on the student's batch inside train_step (KD=online, the paper's setup), `cached` reads "
        "the teacher's logits from the LogitTable in each item (KD=clean), `plain` has no KD. The cache's "
        "share of the teacher's cost removed is 1 - (cached - plain) / (online - plain): 1 means KD from "
        f"the store costs nothing over plain training. Median over {params.repeats} interleaved repeats "
        "after one warm-up batch of each kind."
    )
    return Measured(figures, {f"{k}_epoch_s": v for k, v in seconds.items()}, details, note)
