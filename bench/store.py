"""Entries `store_bytes` (bytes on disk per clip-view) and `topk_error` (what TOPK=k costs the KD loss)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.store.format import ARRAY, LOGIT_ARRAYS, VIEW_PARAM_ARRAYS  # the store's own schema, not a copy of it
from pipeline.testing import simulated_logits, write_simulated_store

from .harness import RATIO, BenchContext, Figure, Goal, Measured

# what a view costs besides its logits: its augmentation parameters and the partner's uint8 twin
VIEW_PARAMETERS = {*VIEW_PARAM_ARRAYS, ARRAY.view_partner, ARRAY.view_partner_utf8}


def bytes_on_disk(folder: Path) -> tuple[int, dict[str, int]]:
    """(all file bytes under folder, bytes per top-level entry); zarr.json metadata counts too."""
    per_entry: dict[str, int] = {}
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            top = path.relative_to(folder).parts[0]
            per_entry[top] = per_entry.get(top, 0) + path.stat().st_size
    return sum(per_entry.values()), dict(sorted(per_entry.items(), key=lambda kv: -kv[1]))


def _uncompressed_numeric_bytes(path: Path) -> int:
    """What the numeric arrays would take uncompressed (strings excluded): shows what zstd saves."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    total = 0
    for _, array in group.arrays():
        if array.dtype.kind in "biuf":
            total += int(np.prod(array.shape)) * array.dtype.itemsize
    return total


# -- store_bytes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreBytesParams:
    clips: int = 2000
    classes: int = 200
    views: int = 2
    dtype: str = "float16"


STORE_BYTES_FULL = StoreBytesParams()
STORE_BYTES_QUICK = StoreBytesParams(clips=300, classes=200)


def run_store_bytes(ctx: BenchContext, params: StoreBytesParams) -> Measured:
    from pipeline.augment import AugmentSettings, draw_view
    from pipeline.store import views_to_arrays

    clip_ids = [f"clip{i:07d}" for i in range(params.clips)]
    # the AST AudioSet recipe's augmentation, so view parameters hold realistic values
    settings = AugmentSettings(mixup=0.5, mixup_alpha=10.0, freqm=48, timem=192)
    logits = simulated_logits(params.clips, params.classes, seed=1)
    view_logits = simulated_logits(params.clips * params.views, params.classes, seed=2).reshape(
        params.clips, params.views, params.classes
    )

    def chunk_views(start: int, stop: int):
        views = [
            [draw_view(0, clip_id, k, clip_ids, settings, 128, 1024) for k in range(params.views)]
            for clip_id in clip_ids[start:stop]
        ]
        return view_logits[start:stop], views_to_arrays(views)

    path = ctx.folder("store_bytes") / "views.zarr"
    write_simulated_store(
        path,
        clip_ids,
        params.classes,
        lambda a, b: logits[a:b],
        views=params.views,
        chunk_views=chunk_views,
        dtype=params.dtype,
    )
    total, per_array = bytes_on_disk(path)
    clip_views = params.clips * (1 + params.views)
    itemsize = np.dtype(params.dtype).itemsize
    ideal = clip_views * itemsize * params.classes
    logit_bytes = sum(size for name, size in per_array.items() if name in LOGIT_ARRAYS)
    view_param_bytes = sum(size for name, size in per_array.items() if name in VIEW_PARAMETERS)
    other_bytes = total - logit_bytes - view_param_bytes
    ratio = total / ideal
    raw = _uncompressed_numeric_bytes(path)
    details = {
        "total_bytes": total,
        "ideal_bytes": ideal,
        "clip_views": clip_views,
        "bytes_per_clip_view": total / clip_views,
        "logit_arrays_ratio": logit_bytes / ideal,
        "view_parameter_bytes_per_clip": view_param_bytes / params.clips,
        "other_bytes_per_clip": other_bytes / params.clips,
        "bytes_per_array": per_array,
        "uncompressed_numeric_ratio": raw / ideal,
    }
    note = (
        f"{params.clips} clips x {params.classes} classes, {params.views} views, {params.dtype}, written "
        "with the store's own writer (default chunking and zarr's default zstd compression) from simulated "
        "AudioSet-like logits, views drawn with mixup 0.5 / freqm 48 / timem 192. Measured: every file under "
        f"the store directory / (clips x (1 + views) x {itemsize} x classes). Of the total, the logit arrays "
        f"alone are {logit_bytes / ideal:.3f}x the dense size (zstd on these simulated float16 logits; "
        "noisier logits compress less), "
        f"the per-view parameters (partner id, lambda, shift, masks) add "
        f"{view_param_bytes / params.clips:.0f} B per clip and clip ids, splits, bookkeeping and zarr.json "
        f"metadata {other_bytes / params.clips:.0f} B per clip; those fixed costs weigh less as the class "
        "count grows (527 for AudioSet). Without compression the numeric arrays alone would be "
        f"{raw / ideal:.3f}x."
    )
    return Measured([Figure("bytes per clip-view / (2 x classes)", ratio, RATIO, Goal("<=", 1.05))], {}, details, note)


# -- topk_error ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopkParams:
    rows: int = 4096
    classes: int = 527
    k: int = 20
    batch: int = 32
    tau: float = 1.0
    student_noise: float = 1.5  # the student's logits = teacher's + N(0, noise): a partly trained student


TOPK_FULL = TopkParams()
TOPK_QUICK = TopkParams(rows=512)


def _batch_errors(
    teacher: np.ndarray, rebuilt: np.ndarray, student: np.ndarray, kind: str, params: TopkParams
) -> tuple[list[float], list[float]]:
    """Per batch: relative error of the KD loss and of its gradient w.r.t. the student's logits."""
    import torch

    from pipeline.training.losses import KDLoss, kd_loss, kd_targets

    settings = KDLoss(kind, params.tau)
    loss_errors, grad_errors = [], []
    for start in range(0, len(teacher), params.batch):
        rows = slice(start, start + params.batch)
        results = []
        for source in (teacher, rebuilt):
            logits = torch.tensor(student[rows], requires_grad=True)
            loss = kd_loss(logits, kd_targets(torch.from_numpy(source[rows]), settings), settings)
            loss.backward()
            results.append((float(loss.detach()), logits.grad.clone()))
        (dense_loss, dense_grad), (topk_loss, topk_grad) = results
        loss_errors.append(abs(topk_loss - dense_loss) / abs(dense_loss))
        grad_errors.append(float((topk_grad - dense_grad).norm() / dense_grad.norm()))
    return loss_errors, grad_errors


def run_topk(ctx: BenchContext, params: TopkParams) -> Measured:
    from pipeline.store import rebuild_dense, topk_compress

    stored = np.float16  # stores hold float16: compare what a student would actually read
    teacher = simulated_logits(params.rows, params.classes, seed=3).astype(stored).astype(np.float32)
    rng = np.random.default_rng(4)
    student = (teacher + rng.normal(0.0, params.student_noise, teacher.shape)).astype(np.float32)
    figures, details = [], {}
    # multi-label stores use the sigmoid fill rule whatever the KD loss; single-label ones the softmax rule
    for kind, activation in (("kl", "sigmoid"), ("bce", "sigmoid"), ("kl", "softmax")):
        values, indices, fill = topk_compress(teacher, params.k, activation)
        rebuilt = rebuild_dense(values.astype(stored), indices, fill.astype(stored), params.classes)
        loss_errors, grad_errors = _batch_errors(teacher, rebuilt, student, kind, params)
        label = f"{kind} loss, {activation}-fill store"
        figures.append(Figure(f"{label}: KD loss, mean relative error", float(np.mean(loss_errors)), "relative error"))
        figures.append(
            Figure(f"{label}: KD gradient, mean relative error", float(np.mean(grad_errors)), "relative error")
        )
        details[f"{kind}_{activation}"] = {
            "loss_rel_error_mean": float(np.mean(loss_errors)),
            "loss_rel_error_max": float(np.max(loss_errors)),
            "grad_rel_error_mean": float(np.mean(grad_errors)),
            "grad_rel_error_max": float(np.max(grad_errors)),
        }
    note = (
        f"TOPK={params.k} vs dense on {params.rows} simulated AudioSet-like rows ({params.classes} classes, "
        "1-4 active classes per clip, the rest at sigmoid probabilities around 0.1-1 %), float16 as stored; "
        f"student logits = teacher + N(0, {params.student_noise:g}). Per batch of {params.batch}: the KD loss "
        f"(tau {params.tau:g}) from rebuilt vs dense teacher logits, |L_topk - L_dense| / L_dense, and the "
        "relative L2 error of its gradient w.r.t. the student logits (what training actually follows); means "
        "over batches, maxima in details. A multi-label store uses the sigmoid fill rule whatever the KD "
        "loss; the softmax rule (single-label stores) is shown for `kl`. No goal: the figures say how much "
        "the compact store changes the KD signal on logits with this many weak classes, so users can judge "
        "TOPK against the dense store's size."
    )
    return Measured(figures, {}, details, note)
