"""Entries `cached_kd_step` and `online_vs_cached`: what cached teacher logits cost a training step,
and how much of an online teacher's cost they remove.

All sides train the same student on the same batches of features (computed once from generated
audio, so audio decoding, common to every side, does not dilute the differences). The cached side
fetches its KD targets from a real :class:`pipeline.store.LogitTable` inside the timed step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .harness import RATIO, BenchContext, Figure, Goal, Measured, interleaved, median, paired_ratio, repeat_timed
from .synthetic import simulated_logits, synth_wave, write_simulated_store


@dataclass
class Batch:
    clip_ids: list[str]
    features: torch.Tensor
    targets: torch.Tensor


def make_batches(clip_ids: list[str], batch: int, n_mels: int, target_length: int, num_classes: int,
                 seed: int = 0) -> list[Batch]:
    """Features of generated audio exactly target_length frames long, and random multi-hot targets."""
    from ..config import FrontEndConfig
    from ..features import samples_for_frames, wave_to_features

    front_end = FrontEndConfig(n_mels=n_mels, target_length=target_length)
    seconds = samples_for_frames(target_length, front_end) / front_end.sample_rate
    rng = np.random.default_rng(seed)
    batches = []
    for start in range(0, len(clip_ids), batch):
        ids = clip_ids[start : start + batch]
        features = torch.stack([wave_to_features(synth_wave(seconds, front_end.sample_rate, rng), front_end)
                                for _ in ids])
        targets = torch.from_numpy((rng.random((len(ids), num_classes)) < 3 / num_classes).astype(np.float32))
        batches.append(Batch(ids, features, targets))
    return batches


def logit_table(ctx: BenchContext, name: str, clip_ids: list[str], num_classes: int):
    """A complete float16 store of simulated logits for these clips, opened as stage two opens it."""
    from ..store import LogitTable

    logits = simulated_logits(len(clip_ids), num_classes, seed=5)
    path = write_simulated_store(ctx.folder(name) / "teacher.zarr", clip_ids, num_classes, lambda a, b: logits[a:b])
    return LogitTable.open(path)


class Student:
    """A student and its optimiser; step() is one full training step with or without KD targets."""

    def __init__(self, model_name: str, num_classes: int, n_mels: int, target_length: int, kd_loss: str,
                 kd_lambda: float = 0.5):
        from ..models import create_model

        torch.manual_seed(0)
        self.model = create_model(model_name, num_classes=num_classes, n_mels=n_mels, target_length=target_length)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.kd_loss, self.kd_lambda = kd_loss, kd_lambda

    def step(self, batch: Batch, kd_probs: torch.Tensor | None, kd_mask: torch.Tensor | None = None) -> None:
        from ..losses import cmkd_loss

        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(batch.features)
        lam = self.kd_lambda if kd_probs is not None else 1.0
        total, _ = cmkd_loss(logits, batch.targets, kd_probs, kd_mask, None, lam, self.kd_loss, single_label=False)
        total.backward()
        self.optimizer.step()


def cached_targets(table, batch: Batch, kind: str, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage two's lookup: clip ids -> store rows -> float32 logits -> teacher probabilities, KD mask."""
    from ..losses import kd_targets

    rows = table.rows(batch.clip_ids)
    mask = torch.from_numpy(table.usable(rows).astype(np.float32))
    return kd_targets(torch.from_numpy(table.logits_for(rows)), tau, kind), mask


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
    clip_ids = [f"clip{i:07d}" for i in range(params.table_rows)]
    table = logit_table(ctx, "cached_kd_step", clip_ids, params.classes)
    picked = list(np.random.default_rng(1).choice(clip_ids, size=params.batch, replace=False))
    batch = make_batches(picked, params.batch, params.n_mels, params.target_length, params.classes)[0]
    student = Student(params.model, params.classes, params.n_mels, params.target_length, params.kd_loss)

    def cached_step():
        probs, mask = cached_targets(table, batch, params.kd_loss)
        student.step(batch, probs, mask)

    seconds = interleaved({"cached": cached_step, "plain": lambda: student.step(batch, None)}, params.repeats,
                          params.warmup)
    lookup = repeat_timed(lambda: cached_targets(table, batch, params.kd_loss), repeats=50, warmup=5)
    ratio = paired_ratio(seconds["cached"], seconds["plain"])
    details = {"plain_step_s": median(seconds["plain"]), "cached_step_s": median(seconds["cached"]),
               "lookup_and_targets_ms": 1000 * median(lookup), "table_rows": params.table_rows}
    note = (f"{params.model} student at {params.n_mels}x{params.target_length}, batch {params.batch}, "
            f"{params.classes} classes, {torch.get_num_threads()} threads. Plain step: forward, BCE task loss "
            "(cmkd_loss without KD targets), backward, Adam. Cached step: the same plus, inside the timed "
            f"step, clip ids -> rows of a {params.table_rows}-row float16 LogitTable -> float32 logits -> "
            f"kd_targets ({params.kd_loss}) -> cmkd_loss with lambda 0.5. Same batch of precomputed features "
            f"for both (audio decoding is common to both and left out, which makes the ratio stricter); "
            f"median of {params.repeats} interleaved pairs after {params.warmup} warm-up pairs. The lookup and "
            f"target computation alone take {1000 * median(lookup):.2f} ms.")
    return Measured([Figure("cached-KD step / plain supervised step", ratio, RATIO, Goal("<=", 1.03))],
                    {f"{k}_step_s": v for k, v in seconds.items()} | {"lookup_and_targets_s": lookup}, details, note)


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
ONLINE_QUICK = OnlineParams(teacher="ast_tiny", student="efficientnet_tiny", n_mels=64, target_length=400,
                            clips=4, batch=2, repeats=1)


def run_online(ctx: BenchContext, params: OnlineParams) -> Measured:
    from ..losses import kd_targets
    from ..models import create_model

    clip_ids = [f"clip{i:05d}" for i in range(params.clips)]
    table = logit_table(ctx, "online_vs_cached", clip_ids, params.classes)
    batches = make_batches(clip_ids, params.batch, params.n_mels, params.target_length, params.classes)
    student = Student(params.student, params.classes, params.n_mels, params.target_length, params.kd_loss)
    teacher = create_model(params.teacher, num_classes=params.classes, n_mels=params.n_mels,
                           target_length=params.target_length).eval()
    teacher.requires_grad_(False)

    def online_targets(batch: Batch) -> torch.Tensor:
        with torch.no_grad():  # the trainer's online mode: a frozen teacher on the student's own batch
            return kd_targets(teacher(batch.features).float(), 1.0, params.kd_loss)

    def plain(chosen=batches):
        for batch in chosen:
            student.step(batch, None)

    def cached(chosen=batches):
        for batch in chosen:
            student.step(batch, *cached_targets(table, batch, params.kd_loss))

    def online(chosen=batches):
        for batch in chosen:
            student.step(batch, online_targets(batch))

    for epoch in (plain, cached, online):  # warm-up: one batch each
        epoch(batches[:1])
    seconds = interleaved({"plain": plain, "cached": cached, "online": online}, params.repeats, warmup=0)
    removed = [1.0 - (c - p) / (o - p) for p, c, o in zip(seconds["plain"], seconds["cached"], seconds["online"])]
    saved = [(o - c) / o for c, o in zip(seconds["cached"], seconds["online"])]
    figures = [Figure("teacher cost removed by the cache, 1 - (cached - plain) / (online - plain)", median(removed),
                      "fraction", Goal(">=", 0.90)),
               Figure("online-KD epoch / cached-KD epoch", paired_ratio(seconds["online"], seconds["cached"]), RATIO),
               Figure("epoch time saved, (online - cached) / online", median(saved), "fraction")]
    details = {k: median(v) for k, v in seconds.items()} | {"clips": params.clips, "batch": params.batch}
    note = (f"{params.teacher} teacher -> {params.student} student at {params.n_mels}x{params.target_length}, "
            f"{params.clips} clips in batches of {params.batch}, {params.classes} classes, "
            f"{torch.get_num_threads()} threads. An epoch is every batch's full student step (forward, "
            "cmkd_loss, backward, Adam) on precomputed features; `online` adds the frozen random-init teacher's "
            "forward under no_grad on the same batch (the paper's setup), `cached` adds the LogitTable lookup "
            "instead, `plain` has no KD. The cache's share of the teacher's cost removed is "
            "1 - (cached - plain) / (online - plain): 1 means KD from the store costs nothing over plain "
            f"training. Median over {params.repeats} interleaved repeats after one warm-up batch of each kind.")
    return Measured(figures, {f"{k}_epoch_s": v for k, v in seconds.items()}, details, note)
