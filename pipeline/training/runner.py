"""From (dataset, config, run name) to a finished run directory: resolves splits and folds.

Fold-based data (ESC-50 layout): ``fold=k`` trains on the other folds and evaluates on fold k;
without a fold the folds run in turn under ``<run>/fold<k>/`` and the run's summary holds their mean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..manifests import Manifest, load_manifest
from .loop import TrainJob, distributed_context, train
from .runlog import write_summary

METRIC_KEYS = ("map", "mauc", "dprime", "accuracy")


def run_dir_for(dataset: str, run: str, runs_root: str | Path = "runs") -> Path:
    return Path(runs_root) / dataset / run


def splits_for(manifest: Manifest, fold: int | None):
    """(train, val, eval) clip lists; unlabelled clips train (KD only) but are never scored."""
    train_clips = manifest.select("train", fold)
    val_clips = [c for c in manifest.select("val", fold) if c.labels]
    eval_clips = [c for c in manifest.select("eval", fold) if c.labels]
    if not train_clips or not eval_clips:
        raise ValueError(f"{manifest.name}: no train or eval clips (train={len(train_clips)}, eval={len(eval_clips)})")
    return train_clips, val_clips or eval_clips, eval_clips


def make_job(config: Config, manifest: Manifest, run_dir: Path, fold: int | None, job_extras=None) -> TrainJob:
    """job_extras(config, manifest, train_clips, front_end) -> dict of extra TrainJob fields (KD sources)."""
    train_clips, val_clips, eval_clips = splits_for(manifest, fold)
    if config.max_clips:
        train_clips = train_clips[: config.max_clips]
    front_end = config.front_end(manifest.stats())
    extra = job_extras(config, manifest, train_clips, front_end) if job_extras else {}
    config = extra.pop("config", config)  # stage two resolves KD settings (kd_loss) against the teacher
    return TrainJob(config=config, manifest=manifest, train_clips=train_clips, val_clips=val_clips,
                    eval_clips=eval_clips, front_end=front_end, run_dir=run_dir, **extra)


def run_training(dataset: str, config: Config, run: str, fold: int | None = None, resume: bool = False,
                 manifests_root: str | Path = "data_manifests", runs_root: str | Path = "runs",
                 job_extras=None, progress: bool = True) -> dict:
    """Train one model (or one per fold); job_extras as in :func:`make_job` (KD sources). Under
    torchrun the ranks other than 0 return an empty dict."""
    manifest = load_manifest(Path(manifests_root) / dataset)
    run_dir = run_dir_for(dataset, run, runs_root)
    folds = [fold] if fold is not None else (manifest.folds if _fold_based(manifest) else [None])
    summaries = {}
    for k in folds:
        fold_dir = run_dir / f"fold{k}" if (k is not None and fold is None) else run_dir
        if resume and (fold_dir / "summary.json").exists() and (fold_dir / "checkpoints" / "final.pt").exists():
            summaries[k] = json.loads((fold_dir / "summary.json").read_text())
            print(f"{fold_dir} already finished; skipping")
            continue
        job = make_job(_with_fold(config, k), manifest, fold_dir, k, job_extras)
        summaries[k] = train(job, resume=resume, progress=progress)
    if distributed_context()[0] != 0:
        return {}  # under torchrun only rank 0 evaluates, writes and reports
    if len(folds) == 1:
        return summaries[folds[0]]
    summary = fold_mean(summaries)
    write_summary(run_dir / "summary.json", summary)
    return summary


def fold_mean(summaries: dict) -> dict:
    """Mean over folds under the plain keys, with the per-fold values beside them."""
    out = {key: float(np.mean([s[key] for s in summaries.values()])) for key in METRIC_KEYS}
    out["folds"] = {str(k): {key: s[key] for key in METRIC_KEYS} for k, s in summaries.items()}
    out["std_over_folds"] = {key: float(np.std([s[key] for s in summaries.values()])) for key in METRIC_KEYS}
    return out


def _fold_based(manifest: Manifest) -> bool:
    return bool(manifest.folds) and not any(c.split for c in manifest.clips)


def _with_fold(config: Config, fold: int | None) -> Config:
    import dataclasses

    return dataclasses.replace(config, fold=fold)


def latest_run(dataset: str, runs_root: str | Path = "runs") -> str:
    """The most recently finished run of a dataset (a directory holding checkpoints/final.pt)."""
    finals = sorted(Path(runs_root, dataset).glob("**/checkpoints/final.pt"), key=lambda p: p.stat().st_mtime)
    if not finals:
        raise FileNotFoundError(f"no finished run under {runs_root}/{dataset}/: run `make teacher` first "
                                f"or pass TEACHER=<run dir>")
    newest = finals[-1].parent.parent
    if (newest.parent / "crossfit.json").exists():  # a member of a cross-fitted run: use the whole set
        return str(newest.parent)
    return str(newest)
