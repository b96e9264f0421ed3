"""Cross-fitted teachers: k models, each trained on all training clips but one k-th share.

A teacher's logits on its own training clips are near-hard labels (it has memorised them), and
distilling from those can hurt on small data. Stage one labels each training clip with the member
that held it out ("out-of-fold" logits, as in stacking), so the student learns from what the teacher
actually generalises. The partition is drawn from the seed and recorded in ``crossfit.json``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..checkpoints import model_from_checkpoint
from ..config import Config
from ..manifests import Clip, load_manifest
from ..metrics import METRIC_KEYS, evaluate_predictions
from ..paths import MANIFESTS_ROOT, RUNS_ROOT, write_crossfit
from ..paths import run_dir as run_dir_for
from .evaluate import predict
from .job import TrainJob
from .loop import distributed_context, single_label_of, train
from .runlog import write_summary
from .runner import splits_for


def partition(clips: list[Clip], k: int, seed: int) -> list[list[str]]:
    """k disjoint shares covering every clip exactly once, drawn from the seed."""
    if not 2 <= k <= len(clips):
        raise ValueError(f"CROSSFIT={k}: need 2 <= k <= {len(clips)} training clips")
    order = np.random.default_rng([seed, 0xC0F1]).permutation(len(clips))
    return [[clips[i].clip_id for i in sorted(share)] for share in np.array_split(order, k)]


def run_crossfit(
    dataset: str,
    config: Config,
    run: str,
    k: int,
    fold: int | None = None,
    resume: bool = False,
    manifests_root: str | Path = MANIFESTS_ROOT,
    runs_root: str | Path = RUNS_ROOT,
    progress: bool = True,
) -> dict:
    manifest = load_manifest(Path(manifests_root) / dataset)
    if fold is None and manifest.fold_based:
        raise ValueError(f"{dataset} is fold-based: cross-fit within one fold's training folds (FOLD=k)")
    config = dataclasses.replace(config, fold=fold)
    run_dir = run_dir_for(dataset, run, runs_root)
    train_clips, val_clips, eval_clips = splits_for(manifest, fold, config.select_on, config.seed)
    shares = partition(train_clips, k, config.seed)
    single_label = single_label_of(config, manifest)
    front_end = config.front_end(manifest.stats(), manifest.name)
    members, oof_scores, oof_targets, member_summaries = [], [], [], []
    rank = distributed_context()[0]
    for index, held_out in enumerate(shares):
        member_dir = run_dir / f"member{index}"
        held = set(held_out)
        job = TrainJob(
            config=config,
            manifest=manifest,
            train_clips=[c for c in train_clips if c.clip_id not in held],
            val_clips=val_clips,
            eval_clips=eval_clips,
            front_end=front_end,
            run_dir=member_dir,
            extra_summary={"crossfit_member": index, "held_out_clips": len(held_out)},
        )
        done = (member_dir / "summary.json").exists() and (member_dir / "checkpoints" / "final.pt").exists()
        summary = (
            json.loads((member_dir / "summary.json").read_text())
            if (resume and done)
            else train(job, resume=resume, progress=progress)
        )
        if rank != 0:
            continue  # under torchrun every rank trains; rank 0 alone scores the held-out share and writes
        member_summaries.append(summary)
        members.append({"run_dir": f"member{index}", "held_out": held_out})
        model, _, _ = model_from_checkpoint(member_dir)
        held_clips = [c for c in train_clips if c.clip_id in held and c.labels]
        if held_clips:
            scores, targets = predict(
                model,
                manifest,
                held_clips,
                front_end,
                batch_size=config.eval_batch_size,
                progress=progress,
                desc=f"out-of-fold {index}",
            )
            oof_scores.append(scores)
            oof_targets.append(targets)
    if rank != 0:
        return {}
    out_of_fold = evaluate_predictions(np.concatenate(oof_scores), np.concatenate(oof_targets), single_label)
    info = {
        "k": k,
        "seed": config.seed,
        "fold": fold,
        "members": members,
        "out_of_fold": {key: out_of_fold[key] for key in (*METRIC_KEYS, "n_clips")},
    }
    write_crossfit(run_dir, info)
    summary = {key: float(np.mean([s[key] for s in member_summaries])) for key in METRIC_KEYS}
    summary.update(
        {
            "cross_fitted": k,
            "members": [{key: s[key] for key in ("map", "accuracy")} for s in member_summaries],
            "per_class_ap": _mean_per_class_ap(member_summaries),
            "epochs_trained": "/".join(str(s.get("epochs_trained", "?")) for s in member_summaries),
            "out_of_fold": info["out_of_fold"],
            "model": config.model,
            "dataset": dataset,
            "seed": config.seed,
        }
    )
    write_summary(run_dir / "summary.json", summary)
    print(
        f"cross-fitted {k} teachers: out-of-fold mAP {out_of_fold['map']:.4f}, accuracy {out_of_fold['accuracy']:.4f}"
    )
    return summary


def _mean_per_class_ap(member_summaries: list[dict]) -> list[float | None]:
    """Each class's eval AP averaged over the members that scored it (a run's summary writes None for a
    class with no positive eval clip), like the summary's mAP, so the report's per-group figures exist
    for a cross-fitted teacher too."""
    out = []
    for values in zip(*(s.get("per_class_ap") or [] for s in member_summaries)):
        scored = [v for v in values if v is not None]
        out.append(float(np.mean(scored)) if scored else None)
    return out
