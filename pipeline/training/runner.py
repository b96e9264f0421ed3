"""From (dataset, config, run name) to a finished run directory: resolves splits and folds.

Fold-based data (ESC-50 layout): ``fold=k`` trains on the other folds and evaluates on fold k;
without a fold the folds run in turn under ``<run>/fold<k>/`` and the run's summary holds their mean.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..config_check import check_config
from ..manifests import Clip, Manifest, load_manifest
from ..metrics import METRIC_KEYS
from ..paths import MANIFESTS_ROOT, RUNS_ROOT, is_crossfit_run, manifest_dir
from ..paths import run_dir as run_dir_for
from .dataset import SKIPPED_FILE, read_skipped
from .job import TrainJob
from .kd_source import KDSource
from .loop import distributed_context, train
from .runlog import run_log, write_summary

# share of the training clips held out for model selection when the data has no val split
CARVED_VAL_FRACTION = 0.1
SELECT_ON = ("val", "eval")


def splits_for(manifest: Manifest, fold: int | None, select_on: str = "val", seed: int = 0, max_clips: int = 0):
    """(train, val, eval) clip lists; unlabelled clips train (KD only) but are never scored, and
    ``max_clips`` > 0 keeps the first that many training clips (after any val split is carved).

    Model selection (best.pt) never looks at the eval split unless asked (``select_on=eval``): data
    without a val split (ESC-50 folds, AudioSet) gets one carved from its labelled training clips,
    drawn from the seed; :func:`selection_note` says which happened.
    """
    if select_on not in SELECT_ON:
        raise ValueError(f"select_on must be one of {SELECT_ON}, got {select_on!r}")
    train_clips = manifest.select("train", fold)
    val_clips = [c for c in manifest.select("val", fold) if c.labels]
    eval_clips = [c for c in manifest.select("eval", fold) if c.labels]
    if not train_clips or not eval_clips:
        raise ValueError(f"{manifest.name}: no train or eval clips (train={len(train_clips)}, eval={len(eval_clips)})")
    if not val_clips and select_on == "eval":
        val_clips = eval_clips
    elif not val_clips:
        labelled = [i for i, c in enumerate(train_clips) if c.labels]
        count = max(1, round(CARVED_VAL_FRACTION * len(labelled)))
        if len(labelled) < 2:
            raise ValueError(
                f"{manifest.name}: no val split and too few labelled training clips to carve one; "
                f"pass select_on=eval to select on the eval split"
            )
        carved = set(np.random.default_rng([seed, 0x5E1]).choice(labelled, size=count, replace=False).tolist())
        val_clips = [c for i, c in enumerate(train_clips) if i in carved]
        train_clips = [c for i, c in enumerate(train_clips) if i not in carved]
    return (train_clips[:max_clips] if max_clips else train_clips), val_clips, eval_clips


def selection_note(manifest: Manifest, fold: int | None, config: Config, val_clips: list) -> str:
    """What best.pt was selected on, for the run's summary."""
    if any(c.labels for c in manifest.select("val", fold)):
        return f"val split ({len(val_clips)} clips)"
    if config.select_on == "eval":
        return f"eval split (select_on=eval; no val split), {len(val_clips)} clips"
    return (
        f"val carved from train: {len(val_clips)} clips ({CARVED_VAL_FRACTION:.0%} of the labelled training "
        f"clips, seed {config.seed}); the data has no val split"
    )


@dataclass(frozen=True)
class FoldSplit:
    """One model a run trains: its fold (None: the one model of split-based data), its folder, and the
    clips it trains on, selects on and is scored on. Stage two builds these once, joins its store to
    ``train``, and hands the same lists to :func:`run_training`."""

    fold: int | None
    run_dir: Path
    train: list[Clip]
    val: list[Clip]
    eval: list[Clip]


def fold_splits(manifest: Manifest, run_dir: Path, fold: int | None, config: Config) -> list[FoldSplit]:
    """A :class:`FoldSplit` per model of the run (:func:`fold_runs`), split by :func:`splits_for`."""
    return [
        FoldSplit(k, fold_dir, *splits_for(manifest, k, config.select_on, config.seed, config.max_clips))
        for k, fold_dir in fold_runs(manifest, run_dir, fold)
    ]


def fold_runs(manifest: Manifest, run_dir: Path, fold: int | None) -> list[tuple[int | None, Path]]:
    """(fold, directory) of every model one run trains: the given fold, each fold of fold-based
    data in turn (under ``fold<k>/``), or the one model of split-based data."""
    if fold is not None:
        return [(fold, run_dir)]
    if not manifest.fold_based:
        return [(None, run_dir)]
    return [(k, run_dir / f"fold{k}") for k in manifest.folds]


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists() and (run_dir / "checkpoints" / "final.pt").exists()


def run_training(
    dataset: str,
    config: Config,
    run: str,
    fold: int | None = None,
    resume: bool = False,
    manifests_root: str | Path = MANIFESTS_ROOT,
    runs_root: str | Path = RUNS_ROOT,
    kd: dict[int | None, KDSource] | None = None,
    progress: bool = True,
    planned: tuple[Manifest, list[FoldSplit]] | None = None,
) -> dict:
    """Train one model (or one per fold). ``kd`` maps each fold to train (None: the one model of
    split-based data) to its teacher, and ``planned`` gives the manifest and the splits that teacher
    was joined to (stage two, :func:`pipeline.stage_two.run.train_student`); without them the training
    is supervised and the splits are made here. Under torchrun the ranks other than 0 return an empty
    dict. What the run prints goes to ``<run>/train.log`` too (:func:`runlog.run_log`)."""
    with run_log(run_dir_for(dataset, run, runs_root)):
        check_config(config)
        if planned is None:
            manifest = load_manifest(manifest_dir(dataset, manifests_root))
            planned = manifest, fold_splits(manifest, run_dir_for(dataset, run, runs_root), fold, config)
        return _train_folds(config, *planned, resume, kd, progress, run_dir_for(dataset, run, runs_root))


def _train_folds(
    config: Config,
    manifest: Manifest,
    splits: list[FoldSplit],
    resume: bool,
    kd: dict[int | None, KDSource] | None,
    progress: bool,
    run_dir: Path,
) -> dict:
    summaries = {}
    for split in splits:
        k, fold_dir = split.fold, split.run_dir
        if resume and is_finished(fold_dir):
            summaries[k] = json.loads((fold_dir / "summary.json").read_text())
            print(f"{fold_dir} already finished; skipping")
            continue
        fold_config = dataclasses.replace(config, fold=k)
        summary = {}
        source = None if kd is None else kd.get(k)
        if kd is not None:
            if source is None:
                raise ValueError(f"{fold_dir}: stage two built no KD source for fold {k}")
            fold_config = dataclasses.replace(fold_config, kd_loss=source.loss.kind)  # resolved by the join
            summary.update(source.summary)
        summary["model_selection"] = selection_note(manifest, k, fold_config, split.val)
        job = TrainJob(
            config=fold_config,
            manifest=manifest,
            train_clips=split.train,
            val_clips=split.val,
            eval_clips=split.eval,
            front_end=fold_config.front_end(manifest.stats(), manifest.name),
            run_dir=fold_dir,
            extra_summary=summary,
            kd=source,
        )
        if not resume:
            (fold_dir / SKIPPED_FILE).unlink(missing_ok=True)
        summaries[k] = train(job, resume=resume, progress=progress)
        record_skipped(fold_dir, summaries[k])
    if distributed_context()[0] != 0:
        return {}  # under torchrun only rank 0 evaluates, writes and reports
    if len(summaries) == 1:
        return next(iter(summaries.values()))
    summary = fold_mean(summaries)
    write_summary(run_dir / "summary.json", summary)
    return summary


def record_skipped(run_dir: Path, summary: dict) -> None:
    """Clips whose audio failed mid-run were trained as silence weighing nothing; their count (and
    the log naming them) goes into the summary so no skip is silent."""
    skipped = read_skipped(run_dir / SKIPPED_FILE)
    if not summary or not skipped:
        return
    summary["skipped_clips"] = {"count": len(skipped), "log": str(run_dir / SKIPPED_FILE)}
    write_summary(run_dir / "summary.json", summary)
    print(
        f"{run_dir}: {len(skipped)} clip(s) skipped because their audio could not be read "
        f"(listed in {run_dir / SKIPPED_FILE})"
    )


def fold_mean(summaries: dict) -> dict:
    """Mean over folds under the plain keys, with the per-fold values beside them."""
    out: dict = {key: float(np.mean([s[key] for s in summaries.values()])) for key in METRIC_KEYS}
    out["folds"] = {str(k): {key: s[key] for key in METRIC_KEYS} for k, s in summaries.items()}
    out["std_over_folds"] = {key: float(np.std([s[key] for s in summaries.values()])) for key in METRIC_KEYS}
    return out


def latest_run(dataset: str, runs_root: str | Path = RUNS_ROOT) -> str:
    """The most recently finished run of a dataset (a directory holding checkpoints/final.pt)."""
    finals = sorted(Path(runs_root, dataset).glob("**/checkpoints/final.pt"), key=lambda p: p.stat().st_mtime)
    if not finals:
        raise FileNotFoundError(
            f"no finished run under {runs_root}/{dataset}/: run `make teacher` first or pass TEACHER=<run dir>"
        )
    newest = finals[-1].parent.parent
    if is_crossfit_run(newest.parent):  # a member of a cross-fitted run: use the whole set
        return str(newest.parent)
    return str(newest)
